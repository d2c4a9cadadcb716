"""`copilot ingest`, `copilot files`, `copilot reindex` and `copilot search`."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.answer.citations import source_label
from copilot.cli.common import database_session, fail, run, settings_of
from copilot.db.models import File, User
from copilot.knowledge.access import (
    AccessChange,
    AccessChangeRefused,
    AccessUpdateFailed,
    set_file_access,
)
from copilot.knowledge.ingest import (
    IngestResult,
    Ownership,
    Reindexed,
    delete_file,
    reindex,
)
from copilot.knowledge.jobs import IN_PROGRESS, IngestProgress, result_of, watch
from copilot.knowledge.knowledge_base import EmbeddingModelChanged, KnowledgeBase
from copilot.knowledge.tags import TagsRefused, set_file_tags
from copilot.search.base import SearchIndexError, search_tags
from copilot.search.ensemble import SearchReport
from copilot.services import Services, open_services
from copilot.settings import Settings

files_app = typer.Typer(
    help="List knowledge files, change who may read them, delete them.", no_args_is_help=True
)

Scope = Literal["personal", "department", "company"]
Classification = Literal["public", "internal", "confidential", "secret"]
DEFAULT_OWNER = "admin@example.com"


@asynccontextmanager
async def open_knowledge(
    settings: Settings, *, allow_model_change: bool = False
) -> AsyncIterator[Services]:
    """The composition root's services with the knowledge base open; all closed after."""
    async with open_services(settings) as services:
        try:
            await services.open_knowledge(allow_model_change=allow_model_change)
        except EmbeddingModelChanged as error:
            fail(str(error))
        yield services


def _files_under(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            fail(f"no such file or folder: {path}")
    return found


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (read recursively).")],
    owner: Annotated[str, typer.Option(help="Owner's email.")] = DEFAULT_OWNER,
    scope: Annotated[Scope, typer.Option(help="Who may read it.")] = "company",
    department: Annotated[
        str | None, typer.Option(help="Department code (default: the owner's).")
    ] = None,
    classification: Annotated[Classification, typer.Option()] = "internal",
) -> None:
    """Add files to the knowledge base. Exit 1 if any file failed."""
    settings = settings_of(ctx)
    files = _files_under(paths)
    if not files:
        fail("no files to ingest")
    results = run(_ingest_all(settings, files, owner, scope, department, classification))
    indexed = [r for r in results if r.outcome == "indexed"]
    duplicates = [r for r in results if r.outcome == "duplicate"]
    failed = [r for r in results if r.outcome == "failed"]
    for result in results:
        color = {"indexed": typer.colors.GREEN, "duplicate": typer.colors.YELLOW}.get(
            result.outcome, typer.colors.RED
        )
        typer.secho(result.summary, fg=color)
    typer.echo(
        f"{len(indexed)} indexed ({sum(r.chunks for r in indexed)} chunks), "
        f"{len(duplicates)} duplicate, {len(failed)} failed"
    )
    if failed:
        raise typer.Exit(1)


async def _ingest_all(
    settings: Settings,
    files: list[Path],
    owner: str,
    scope: Scope,
    department: str | None,
    classification: Classification,
) -> list[IngestResult]:
    async with open_knowledge(settings) as services:
        kb = services.kb
        async with kb.sessions() as session:
            try:
                user = await users.require_user(session, owner)
                department_id = (
                    (await users.get_department(session, department)).id
                    if department
                    else user.department_id
                )
                ownership = Ownership(user.id, scope, department_id, classification)
            except (users.AccountError, ValueError) as error:
                fail(f"{error} (pass --owner EMAIL of an existing user)")
        # The chat's pipeline: admitted (bytes kept), then ingested by the queue's workers
        # (stopped with the services); files a crash interrupted earlier are resumed too.
        recovered = await services.start_ingestion(sweep_seconds=None)
        queue = services.ingestion
        admitted = [await queue.submit(path, ownership) for path in files]
        # The same bytes waiting or running elsewhere (the chat) are followed too.
        followed = [a.id if isinstance(a, File) else await _running(kb, a) for a in admitted]
        if recovered.resumed:
            typer.echo(f"resuming {len(recovered.resumed)} interrupted upload(s)")
        watched = [i for i in followed if i is not None] + recovered.resumed
        finished = {f.id: f for f in await _follow(kb, watched)}
        results: list[IngestResult] = []
        for outcome, file_id in zip(admitted, followed, strict=True):
            if file_id in finished:
                results.append(result_of(finished[file_id]))
            elif isinstance(outcome, IngestResult):
                results.append(outcome)
            # else: deleted while it waited
        return results + [result_of(finished[i]) for i in recovered.resumed if i in finished]


async def _running(kb: KnowledgeBase, result: IngestResult) -> uuid.UUID | None:
    """The file a duplicate names, if it is still being added."""
    if result.outcome != "duplicate":
        return None
    async with kb.sessions() as session:
        file = await session.get(File, uuid.UUID(result.file_id))
    return file.id if file is not None and file.status in IN_PROGRESS else None


async def _follow(kb: KnowledgeBase, file_ids: list[uuid.UUID]) -> list[File]:
    """Show each file's progress (stage, pages, chunks, %) until all are done."""
    with _progress() as progress:
        overall = progress.add_task("files", total=len(file_ids))
        tasks: dict[uuid.UUID, TaskID] = {}

        def show(rows: list[File]) -> None:
            for row in rows:
                if row.status not in IN_PROGRESS:
                    if row.id in tasks:
                        progress.remove_task(tasks.pop(row.id))
                        progress.advance(overall)
                    continue
                task = tasks.get(row.id)
                if task is None:
                    task = tasks[row.id] = progress.add_task(row.original_name, total=100)
                state = IngestProgress.of(row)
                detail = f"{state.stage} {state.done}/{state.total}"
                detail += f", {state.pages} pages" if state.pages else ""
                progress.update(
                    task, description=f"{row.original_name}: {detail}", completed=state.percent
                )

        return await watch(kb, file_ids, show, interval=0.5)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


@files_app.command("list")
def list_files(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option(help="Only this owner's files.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List files with owner, scope, status and counts."""
    rows = run(_file_rows(settings_of(ctx), owner))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        error = f"  ({row['error']})" if row["error"] else ""
        typer.echo(
            f"{row['id']}  {row['status']:<10} {row['scope']:<10} {row['classification']:<12} "
            f"{row['chunks']:>5} chunks  {row['owner']}  {row['name']}{error}"
        )


async def _file_rows(settings: Settings, owner: str | None) -> list[dict[str, object]]:
    async with database_session(settings) as session:
        query = select(File, User.email).join(User, User.id == File.owner_id)
        if owner:
            query = query.where(User.email == users.normalize_email(owner))
        rows = (await session.execute(query.order_by(File.created_at))).all()
    return [
        {
            "id": str(f.id),
            "name": f.original_name,
            "owner": email,
            "scope": f.scope,
            "classification": f.classification,
            "status": f.status,
            "pages": f.page_count,
            "chunks": f.chunk_count,
            "size_bytes": f.size_bytes,
            "error": f.error,
            "created_at": f.created_at.isoformat(),
        }
        for f, email in rows
    ]


def _file_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"'{value}' is not a file id (see copilot files list)")


@files_app.command("delete")
def delete(ctx: typer.Context, file_id: Annotated[str, typer.Argument(help="File id.")]) -> None:
    """Delete a file from the database and both indexes."""
    identifier = _file_id(file_id)

    async def body() -> bool:
        async with open_knowledge(settings_of(ctx)) as services:
            return await delete_file(services.kb, identifier)

    if not run(body()):
        fail(f"no file with id {file_id}")
    typer.echo(f"deleted {file_id}")


@files_app.command("access")
def change_access(
    ctx: typer.Context,
    file_id: Annotated[str, typer.Argument(help="File id.")],
    scope: Annotated[Scope | None, typer.Option(help="Who may read it.")] = None,
    department: Annotated[
        str | None,
        typer.Option(help="Department code, for department files (default: the file's own)."),
    ] = None,
    classification: Annotated[Classification | None, typer.Option()] = None,
) -> None:
    """Change a file's scope, department or classification in the database and in both
    indexes, without embedding anything again."""
    if scope is None and department is None and classification is None:
        fail("say what to change: --scope, --department and/or --classification")
    identifier = _file_id(file_id)

    async def body() -> AccessChange:
        async with open_knowledge(settings_of(ctx)) as services:
            kb = services.kb
            department_id = None
            if department is not None:
                async with kb.sessions() as session:
                    try:
                        department_id = (await users.get_department(session, department)).id
                    except users.AccountError as error:
                        fail(str(error))
            try:
                return await set_file_access(
                    kb,
                    identifier,
                    scope=scope,
                    department_id=department_id,
                    classification=classification,
                )
            except (AccessChangeRefused, AccessUpdateFailed) as error:
                fail(str(error))

    change = run(body())
    after = change.after
    where = f" ({department or after.department_id})" if after.scope == "department" else ""
    typer.echo(
        f"{change.name}: now {after.scope}{where}, {after.classification}; "
        f"{change.chunks} chunks updated in both indexes"
    )


@files_app.command("tags")
def change_tags(
    ctx: typer.Context,
    file_id: Annotated[str, typer.Argument(help="File id.")],
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag (repeatable); none: no tags.")
    ] = None,
) -> None:
    """Replace a file's tags in the database, then in both indexes (the file is indexed
    again from its original)."""
    identifier = _file_id(file_id)

    async def body() -> list[str]:
        async with open_knowledge(settings_of(ctx)) as services:
            try:
                return await set_file_tags(services.kb, identifier, tag or [])
            except TagsRefused as error:
                fail(str(error))
            except SearchIndexError as error:
                fail(f"{error} (the row has the new tags: run `copilot reindex --file {file_id}`)")

    tags = run(body())
    typer.echo(f"tags of {file_id}: {', '.join(tags) if tags else '(none)'}")


def reindex_command(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Option("--file", help="Rebuild one file.")] = None,
    all_files: Annotated[bool, typer.Option("--all", help="Rebuild everything.")] = False,
) -> None:
    """Rebuild the search indexes, re-reading each file's stored original (so chunks gain
    what loaders now record, such as locations); files without one from their chunks."""
    if file is None and not all_files:
        fail("say what to rebuild: --file ID or --all")
    identifier = _file_id(file) if file else None

    async def body() -> Reindexed:
        async with open_knowledge(settings_of(ctx), allow_model_change=all_files) as services:
            kb = services.kb
            with _progress() as progress:
                task = progress.add_task("reindexing", total=None)
                try:
                    return await reindex(
                        kb,
                        identifier,
                        lambda stage, done, total: progress.update(
                            task, completed=done, total=total
                        ),
                    )
                except SearchIndexError as error:
                    unchanged = " (search still uses the indexes as they were)" if all_files else ""
                    fail(f"{error}{unchanged}")

    typer.echo(run(body()).summary)


async def acting_as(session: AsyncSession, email: str, permission: str) -> users.Principal:
    """The user a command acts as, held to the same rules as in the app: active, and with
    the permission the action needs."""
    try:
        user = await users.require_user(session, email)
    except users.AccountError as error:
        fail(str(error))
    if not user.is_active:
        fail(f"{user.email} is deactivated")
    principal = users.principal_of(user)
    if not principal.can(permission):
        fail(f"{user.email} lacks the {permission} permission")
    return principal


def search(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="What to search for.")],
    as_user: Annotated[str, typer.Option("--as", help="Search as this user (their access).")],
    k: Annotated[int, typer.Option(help="How many hits.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    explain: Annotated[bool, typer.Option(help="Show each hit's rank in each retriever.")] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Only files with this tag (repeatable: any of them)."),
    ] = None,
) -> None:
    """Hybrid search within what USER may read."""
    settings = settings_of(ctx)
    try:
        tags = search_tags(tag)
    except ValueError as refused:
        fail(f"--tag: {refused}")

    async def body() -> tuple[list[dict[str, object]], SearchReport]:
        async with open_knowledge(settings) as services:
            async with services.sessions() as session:
                principal = await acting_as(session, as_user, "search.basic")
            documents, report = await services.kb.search.search(
                question, principal.scope, k, tags=tags
            )
            if documents:  # as the chat does: every hit is looked up in the database
                documents = await services.kb.locations(documents)
        hits = [
            {
                "rank": rank,
                "file": d.metadata["file_name"],
                "page": d.metadata["page"],
                "score": round(d.metadata["fused_score"], 5),
                "keyword_rank": d.metadata.get("keyword_rank"),
                "vector_rank": d.metadata.get("vector_rank"),
                "chunk_id": d.metadata["chunk_id"],
                "file_id": d.metadata["file_id"],
                "snippet": d.page_content,
            }
            for rank, d in enumerate(documents, 1)
        ]
        return hits, report

    hits, report = run(body())
    missing = report.missing
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "hits": hits,
                    "missing_engines": missing,
                    "timings_ms": report.timings_ms,
                    "cached": report.cached,
                },
                indent=2,
            )
        )
        return
    for name, error in missing.items():
        typer.secho(
            f"warning: {name} search is unavailable ({error})", fg=typer.colors.YELLOW, err=True
        )
    if not hits:
        typer.echo("no results within your access" + (f" tagged {', '.join(tags)}" if tags else ""))
    for hit in hits:
        page = f", page {hit['page']}" if hit["page"] else ""
        typer.secho(f"[{hit['rank']}] {hit['file']}{page}  score {hit['score']}", bold=True)
        if explain:
            typer.echo(
                f"    keyword rank {hit['keyword_rank'] or '-'}, "
                f"vector rank {hit['vector_rank'] or '-'}"
            )
        snippet = " ".join(str(hit["snippet"]).split())
        typer.echo(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}")


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question.")],
    as_user: Annotated[str, typer.Option("--as", help="Ask as this user (their access).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Answer a question with the chat's own chain: answer, citations, timings."""
    from copilot.answer.chain import AnswerResult, SearchUnavailable
    from copilot.answer.providers import ModelNotConfigured

    settings = settings_of(ctx)

    async def print_token(token: str) -> None:
        if not as_json:
            typer.echo(token, nl=False)

    async def body() -> AnswerResult:
        async with open_knowledge(settings) as services:
            async with services.sessions() as session:
                principal = await acting_as(session, as_user, "chat.use")
            try:
                chain = services.chain
            except ModelNotConfigured as error:
                fail(str(error))
            try:
                return await chain.answer(
                    question,
                    principal.scope,
                    on_token=print_token,
                    permissions=principal.permissions,
                )
            except SearchUnavailable as error:
                fail(str(error))

    result = run(body())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "question": result.question,
                    "answer": result.text,
                    "model": result.model,
                    "citations": result.cited_sources,
                    "latency_ms": result.latency_ms,
                    "timings_ms": result.timings_ms,
                    "missing_engines": result.missing_engines,
                },
                indent=2,
            )
        )
        return
    typer.echo("")
    for source in result.cited_sources:
        typer.secho(f"[{source['number']}] {source_label(source)}", bold=True)
    typer.echo(f"({result.model}, {result.latency_ms} ms)")
