"""The admin pages under /admin: thin routes over `copilot.review`, rendered with Jinja2.

Each route checks the reviewer (the chat's sign-in) and the permission the page or change
needs, runs one review query inside the reviewer's reach and clearance, writes what was
viewed, exported or changed to the audit log, and renders. Templates hold no inline
script: the page behaviour (confirmations, charts) is static/admin.js reading data-
attributes, so the Content-Security-Policy (headers.py) can forbid inline script.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import plotly
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup
from redis.exceptions import RedisError

from copilot.answer.citations import source_place
from copilot.knowledge.ingest import delete_file, reindex
from copilot.knowledge.tags import TagsRefused, set_file_tags
from copilot.review import analytics, audit, export, files, people, sources, transcripts
from copilot.review.conversations import (
    FEEDBACK_CHOICES,
    ConversationFilter,
    FilterError,
    day_param,
    department_codes,
    list_conversations,
    page_param,
)
from copilot.web.admin import charts, syncing
from copilot.web.admin.access import BadInput, Refused, Reviewer, reviewer
from copilot.web.admin.notices import notice_of, notice_params
from copilot.web.runtime import current

ADMIN_PATH = "/admin"
DEFAULT_ANALYTICS_DAYS = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # a NUL cannot even be stored
#: User management and the audit log (what admins did to whom) go together.
USERS_PERMISSION = "admin.users"

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["when"] = lambda value: (
    value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""
)
# Answers are Markdown (citations, the sources line, a model's lists); raw HTML in them is
# escaped, never rendered, and markdown-it refuses javascript: and similar link targets.
_markdown = MarkdownIt("commonmark", {"html": False})


def _image_as_link(
    renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An image in an answer or a document is shown as a link, never loaded: a remote image
    would be a tracking beacon (or a way out for data) on the reviewer's page."""
    token = tokens[idx]
    target = str(token.attrGet("src") or "")
    alt = "".join(child.content for child in token.children or []) or token.content
    return str(
        Markup(
            '<a class="image-link" href="{}" rel="noopener noreferrer nofollow">image: {} ({})</a>'
        ).format(target, alt or "untitled", target)
    )


_markdown.add_render_rule("image", _image_as_link)
templates.env.filters["markdown"] = lambda text: Markup(_markdown.render(text or ""))
templates.env.filters["source_place"] = source_place
router = APIRouter(prefix=ADMIN_PATH, include_in_schema=False)
Signed = Annotated[Reviewer, Depends(reviewer)]


def _render(
    request: Request, template: str, who: Reviewer, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"who": who, "admin_path": ADMIN_PATH, "csrf_token": who.csrf_token, **context},
        status_code=status_code,
    )


def _listing(request: Request, page: int, has_next: bool) -> dict[str, Any]:
    """What every paged listing template needs: the page, its neighbours, a notice."""
    params = {key: value for key, value in request.query_params.items() if key != "page"}
    return {
        "page": page,
        "has_next": has_next,
        "page_link": lambda number: "?" + urlencode({**params, "page": number}),
        "notice": notice_of(request.query_params),
    }


async def _audit(
    request: Request,
    who: Reviewer,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    async with current().sessions() as session:
        await audit.record(
            session,
            who.principal,
            action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=details,
            ip=request.client.host if request.client else None,
        )


def _criteria(request: Request) -> ConversationFilter:
    try:
        return ConversationFilter.from_params(request.query_params)
    except FilterError as error:
        raise BadInput(f"Bad filter: {error}") from error


def _day(request: Request, name: str) -> date | None:
    try:
        return day_param(request.query_params, name)
    except FilterError as error:
        raise BadInput(f"Bad filter: {error}") from error


def _page(request: Request) -> int:
    try:
        return page_param(request.query_params)
    except FilterError as error:
        raise BadInput(f"Bad filter: {error}") from error


def _days_before(day: date, days: int) -> date:
    return day - timedelta(days=days) if day.toordinal() > days else date.min


@router.get("")
async def admin_home() -> RedirectResponse:
    return RedirectResponse(f"{ADMIN_PATH}/conversations", status_code=303)


@router.get("/conversations")
async def conversations_page(request: Request, who: Signed) -> HTMLResponse:
    criteria = _criteria(request)
    async with current().sessions() as session:
        page = await list_conversations(session, who.reach, criteria)
        departments = await department_codes(session, who.reach)
    await _audit(request, who, "admin.view.conversations", details=criteria.as_params())
    return _render(
        request,
        "conversations.html",
        who,
        listing=page,
        criteria=criteria,
        criteria_link=lambda number: "?" + urlencode(criteria.as_params(page=number)),
        departments=departments,
        feedback_choices=FEEDBACK_CHOICES,
    )


@router.get("/conversations/{chat_id}")
async def transcript_page(request: Request, chat_id: uuid.UUID, who: Signed) -> HTMLResponse:
    async with current().sessions() as session:
        transcript = await transcripts.load_transcript(session, who.clearance, chat_id)
    if transcript is None:
        return _render(
            request, "refused.html", who, 404, reason="No such conversation in your reach."
        )
    await _audit(
        request, who, "admin.view.transcript", resource_type="chat", resource_id=str(chat_id)
    )
    return _render(request, "transcript.html", who, transcript=transcript)


@router.get("/export.{form}")
async def export_conversations(request: Request, form: str, who: Signed) -> StreamingResponse:
    if form not in export.MEDIA_TYPES:
        raise BadInput(f"Unknown export format '{form}': use csv or jsonl.")
    criteria = _criteria(request)
    clearance = who.clearance
    await _audit(
        request, who, "admin.export", details={"format": form, **criteria.as_params(page=1)}
    )

    async def body() -> AsyncIterator[str]:
        async with current().sessions() as session:
            async for chunk in export.export_text(session, clearance, criteria, form):  # type: ignore[arg-type]
                yield chunk

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        body(),
        media_type=export.MEDIA_TYPES[form],
        headers={"Content-Disposition": f'attachment; filename="conversations-{stamp}.{form}"'},
    )


@router.get("/feedback")
async def feedback_page(request: Request, who: Signed) -> HTMLResponse:
    page = _page(request)
    async with current().sessions() as session:
        items, has_next = await transcripts.negative_feedback(session, who.clearance, page)
    await _audit(request, who, "admin.view.feedback", details={"page": page})
    return _render(
        request,
        "feedback.html",
        who,
        items=items,
        **_listing(request, page, has_next),
    )


@router.get("/analytics")
async def analytics_page(request: Request, who: Signed) -> HTMLResponse:
    who.require("analytics.view", "Analytics")
    end = _day(request, "end") or datetime.now(UTC).date()
    start = _day(request, "start") or _days_before(end, DEFAULT_ANALYTICS_DAYS - 1)
    if start > end:
        raise BadInput("Bad filter: start: the range starts after it ends")
    async with current().sessions() as session:
        figures = await analytics.usage(session, who.clearance, start, end)
    await _audit(
        request,
        who,
        "admin.view.analytics",
        details={"start": start.isoformat(), "end": end.isoformat()},
    )
    return _render(
        request, "analytics.html", who, usage=figures, charts=charts.usage_charts(figures)
    )


@router.get("/files")
async def files_page(request: Request, who: Signed) -> HTMLResponse:
    status = request.query_params.get("status", "")
    scope = request.query_params.get("scope", "")
    tag = request.query_params.get("tag", "").strip()
    source = _source_param(request)
    page = _page(request)
    async with current().sessions() as session:
        rows, has_next = await files.list_files(
            session, who.clearance, status, scope, page, tag=tag, source_id=source
        )
    details: dict[str, Any] = {"status": status, "scope": scope, "page": page}
    if tag:
        details["tag"] = tag
    if source:
        details["source"] = str(source)
    await _audit(request, who, "admin.view.files", details=details)
    return _render(
        request,
        "files.html",
        who,
        rows=rows,
        status=status,
        scope=scope,
        tag=tag,
        source=source,
        **_listing(request, page, has_next),
    )


def _source_param(request: Request) -> uuid.UUID | None:
    text = request.query_params.get("source", "").strip()
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise BadInput(f"Bad filter: source: {text[:40]!r} is not a data source id") from error


@router.get("/files/{file_id}")
async def file_page(request: Request, file_id: uuid.UUID, who: Signed) -> HTMLResponse:
    async with current().sessions() as session:
        try:
            file, chunks = await files.readable_file(session, who.clearance, file_id)
        except people.NotAllowed as reason:
            return _render(request, "refused.html", who, 404, reason=str(reason))
        history = await files.file_history(session, file)
        try:
            await files.taggable_file(session, who.clearance, file_id)
            taggable = True
        except people.NotAllowed:
            taggable = False
    await _audit(request, who, "admin.view.file", resource_type="file", resource_id=str(file_id))
    return _render(
        request,
        "file.html",
        who,
        file=file,
        chunks=chunks,
        history=history,
        taggable=taggable,
        notice=notice_of(request.query_params),
    )


@router.post("/files/{file_id}/tags")
async def change_tags(
    request: Request, file_id: uuid.UUID, who: Signed, tags: Annotated[str, Form()] = ""
) -> RedirectResponse:
    """Set the file's tags (comma-separated; none clears them), in the database and both
    indexes."""
    who.require(files.COMPANY_PERMISSION, "Setting a file's tags")
    wanted = [tag for tag in tags.split(",") if tag.strip()]  # "a, b," means a and b
    if any(_CONTROL.search(tag) for tag in wanted):
        raise BadInput("Bad tags: a tag contains a control character")
    async with current().sessions() as session:
        file = await files.taggable_file(session, who.clearance, file_id)
        before = list(file.tags or [])
    try:
        after = await set_file_tags(current().kb, file.id, wanted)
    except TagsRefused as error:
        raise BadInput(f"Bad tags: {error}") from error
    await _audit(
        request,
        who,
        "admin.file.tags",
        resource_type="file",
        resource_id=str(file_id),
        details={"name": file.original_name, "before": before, "after": after},
    )
    shown = ", ".join(after) or "none"
    return _back_to(f"files/{file_id}", f"Tags of {file.original_name}: {shown}.")


@router.post("/files/{file_id}/reindex")
async def reindex_file(request: Request, file_id: uuid.UUID, who: Signed) -> RedirectResponse:
    who.require(files.MANAGE_PERMISSION, "Reindexing knowledge files")
    async with current().sessions() as session:
        file = await files.managed_file(session, who.clearance, file_id)
    reindexed = await reindex(current().kb, file.id)
    await _audit(request, who, "admin.file.reindex", resource_type="file", resource_id=str(file_id))
    return _back_to("files", f"Reindexed {file.original_name}: {reindexed.chunks} chunks.")


@router.post("/files/{file_id}/delete")
async def remove_file(request: Request, file_id: uuid.UUID, who: Signed) -> RedirectResponse:
    who.require(files.MANAGE_PERMISSION, "Deleting knowledge files")
    async with current().sessions() as session:
        file = await files.managed_file(session, who.clearance, file_id)
    await delete_file(current().kb, file.id)
    await _audit(
        request,
        who,
        "admin.file.delete",
        resource_type="file",
        resource_id=str(file_id),
        details={"name": file.original_name, "scope": file.scope},
    )
    return _back_to("files", f"Deleted {file.original_name}.")


@router.get("/sources")
async def sources_page(request: Request, who: Signed) -> HTMLResponse:
    async with current().sessions() as session:
        rows = await sources.list_sources(session, who.clearance)
    await _audit(request, who, "admin.view.sources")
    return _render(
        request,
        "sources.html",
        who,
        rows=rows,
        can_sync=who.principal.can(sources.SYNC_PERMISSION),
        sync_permission=sources.SYNC_PERMISSION,
        notice=notice_of(request.query_params),
    )


@router.post("/sources/{source_id}/sync")
async def sync_now(request: Request, source_id: uuid.UUID, who: Signed) -> RedirectResponse:
    """Start an incremental sync of the source and come back to the page at once; the
    job's row (running, then its counts) is what the page shows."""
    who.require(sources.SYNC_PERMISSION, "Syncing a data source")
    async with current().sessions() as session:
        source = await sources.syncable_source(session, who.clearance, source_id)
        running = await sources.sync_running(session, source.id)
    if running:
        return _back_to("sources", f"{source.name} is being synced already.")
    # The sync lives in copilot.knowledge.sources, which builds on this app's layers.
    from copilot.knowledge.sources import SyncAlreadyRunning, sync_source

    kb = current().kb
    syncing.start_in_background(
        lambda: sync_source(kb, source.id, full=False, trigger="admin"),
        source.name,
        SyncAlreadyRunning,
    )
    await _audit(
        request,
        who,
        "admin.source.sync",
        resource_type="data_source",
        resource_id=str(source_id),
        details={"name": source.name},
    )
    return _back_to("sources", f"Sync of {source.name} started.")


def _back_to(page: str, notice: str) -> RedirectResponse:
    """Back to a listing after a change, with a notice only the app can have written."""
    return RedirectResponse(
        f"{ADMIN_PATH}/{page}?{urlencode(notice_params(notice))}", status_code=303
    )


@router.get("/users")
async def users_page(request: Request, who: Signed) -> HTMLResponse:
    who.require(USERS_PERMISSION, "Managing users")
    search = request.query_params.get("search", "").strip()
    page = _page(request)
    async with current().sessions() as session:
        rows, has_next = await people.list_people(session, who.reach, who.principal, search, page)
        roles = await people.assignable_roles(session, who.principal)
    await _audit(request, who, "admin.view.users", details={"search": search, "page": page})
    return _render(
        request,
        "users.html",
        who,
        rows=rows,
        roles=roles,
        search=search,
        **_listing(request, page, has_next),
    )


@router.post("/users/{user_id}/role")
async def change_role(
    request: Request, user_id: uuid.UUID, role: Annotated[str, Form()], who: Signed
) -> RedirectResponse:
    who.require(USERS_PERMISSION, "Changing a user's role")
    async with current().sessions() as session:
        user = await people.change_role(session, who.reach, who.principal, user_id, role)
    await _audit(
        request,
        who,
        "admin.user.role",
        resource_type="user",
        resource_id=str(user_id),
        details={"email": user.email, "role": role},
    )
    return _back_to("users", f"{user.email} is now {role}.")


@router.post("/users/{user_id}/deactivate")
async def deactivate_user(request: Request, user_id: uuid.UUID, who: Signed) -> RedirectResponse:
    return await _set_active(request, user_id, who, active=False)


@router.post("/users/{user_id}/activate")
async def activate_user(request: Request, user_id: uuid.UUID, who: Signed) -> RedirectResponse:
    return await _set_active(request, user_id, who, active=True)


async def _set_active(
    request: Request, user_id: uuid.UUID, who: Reviewer, active: bool
) -> RedirectResponse:
    """Deactivation also ends the user's open sessions at once; reactivation ends any that
    outlived it (a deactivation while Redis was down), so no old sign-in comes back."""
    who.require(USERS_PERMISSION, "Deactivating or reactivating users")
    async with current().sessions() as session:
        user = await people.set_active(session, who.reach, who.principal, user_id, active)
    details: dict[str, Any] = {"email": user.email}
    notice = f"{user.email} reactivated."
    if active:
        try:
            await current().session_store.revoke_user(str(user_id))
        except RedisError as error:
            async with current().sessions() as session:
                await people.set_active(session, who.reach, who.principal, user_id, False)
            raise Refused(
                "Reactivating needs the session store (Redis) to end the account's old "
                "sign-ins first; try again when it is reachable."
            ) from error
    if not active:
        try:
            ended = await current().session_store.revoke_user(str(user_id))
        except RedisError:
            ended = 0  # the account check on every request still refuses them
        details["sessions_ended"] = ended
        notice = f"{user.email} deactivated; {ended} open session(s) ended."
    action = "admin.user.activate" if active else "admin.user.deactivate"
    await _audit(
        request, who, action, resource_type="user", resource_id=str(user_id), details=details
    )
    return _back_to("users", notice)


@router.get("/audit")
async def audit_page(request: Request, who: Signed) -> HTMLResponse:
    who.require(USERS_PERMISSION, "The audit log")
    filters = {
        "actor": request.query_params.get("actor", "").strip(),
        "action": request.query_params.get("action", "").strip(),
    }
    start, end, page = _day(request, "start"), _day(request, "end"), _page(request)
    async with current().sessions() as session:
        entries, has_next = await audit.list_entries(
            session,
            who.reach,
            actor=filters["actor"],
            action=filters["action"],
            start=start,
            end=end,
            page=page,
        )
    await _audit(
        request,
        who,
        "admin.view.audit",
        details={**filters, "start": str(start or ""), "end": str(end or ""), "page": page},
    )
    return _render(
        request,
        "audit.html",
        who,
        entries=entries,
        filters=filters,
        start=start,
        end=end,
        **_listing(request, page, has_next),
    )


@router.get("/vendor/plotly.min.js")
async def plotly_js() -> FileResponse:
    """The chart library, from the installed plotly package: the admin works offline."""
    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(
        bundle, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )
