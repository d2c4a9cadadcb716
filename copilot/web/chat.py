"""The chat: Chainlit handlers for questions, uploads, history and the /files command.

Each question is checked against the asker's session and rate limits, answered by the
retrieval chain under their access scope with tokens streamed as they come, and stored
with its sources, model, tokens and latency. A failed answer is stored with its error; the
question (written by Chainlit's data layer when it arrives) is never lost.

An answer streams as it is written, each cited source's element sent as soon as the text
first citing it is; its Regenerate action answers the same question again (a new, stored
answer that takes the old one's place in the chain's memory). With more than one model
configured, Chainlit's chat profiles are the model picker.

A question needs `chat.use`, an upload `documents.upload`. What goes wrong is shown as a
clear message with an error id; the exception itself is only logged (with that id) and
stored with the answer for admins. Uploads are copied out of Chainlit's per-session files
folder and Chainlit's copy is removed at once, so no copy outlives the file; they are then
ingested in the background (copilot.knowledge.jobs) while the upload's message shows its
progress, so the chat stays usable (a question sent with files waits for them). Such
notices stand outside the question's run: shown in the conversation, never rated. A file
of a kind Copilot cannot read is refused in words before it is queued. `/files` points to
the files page (copilot.web.my_files), where files are listed and deleted. Remote images
in answers, quoted sources and file names are neutralised before they are sent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.step import StepDict
from chainlit.types import ThreadDict

from copilot import users
from copilot.answer.about import files_by_scope
from copilot.answer.chain import Turn
from copilot.db.models import File, QueryLog
from copilot.knowledge.ingest import IngestResult, Ownership
from copilot.knowledge.jobs import IN_PROGRESS, IngestProgress, in_progress, result_of, watch
from copilot.knowledge.loaders import UnreadableFile
from copilot.knowledge.loaders.detection import detect_kind
from copilot.knowledge.loaders.load import HEAD_BYTES
from copilot.users import Principal
from copilot.web import upload_offers
from copilot.web.auth import SignedOut, current_principal
from copilot.web.content_security import StreamingNeutraliser, neutralise_images
from copilot.web.data_layer import SHARED_KEY, CopilotDataLayer, without_nul
from copilot.web.my_files import FILES_PATH
from copilot.web.runtime import current
from copilot.web.sources import cited_source_elements, pdf_url, shown_answer

log = logging.getLogger(__name__)

HISTORY = "history"
#: Per answer shown in this session (by message id): its `Asked`.
ASKED = "asked"
REGENERATE = "regenerate"
#: Set once the browser was told the chat's address (see `_announce_address`).
ADDRESS_SENT = "address_sent"
#: The streamed answer is sent at most this often (see TokenStream).
FRAME_SECONDS = 0.05
POLICY_STARTER = "Find a policy"
STARTERS = [
    ("What can you do?", "What kinds of questions can you answer, and from which documents?"),
    (POLICY_STARTER, "How is mileage for a personal automobile reimbursed?"),
    ("Upload a file", "How do I add my own files to your knowledge?"),
]
CHAT_PERMISSION = "chat.use"
UPLOAD_PERMISSION = "documents.upload"
#: Longest file name kept, in UTF-8 bytes (file systems allow 255); the extension stays.
MAX_FILE_NAME = 200
#: Where uploads wait, under the data dir, between Chainlit handing them over and ingestion.
UPLOADS_FOLDER = "uploads"
FILES_COMMAND = "/files"


@dataclass(frozen=True)
class Asked:
    """What an answer answered: the question, its message, and how many turns of the
    chain's memory came before it."""

    question: str
    message_id: str
    before: int


def data_layer() -> CopilotDataLayer:
    return CopilotDataLayer(current().sessions)


async def starters(user: cl.User | None = None, language: str | None = None) -> list[cl.Starter]:
    documents = 0
    if user is not None:
        runtime = current()
        async with runtime.sessions() as session:
            account = await users.get_user(session, user.identifier)
        if account is not None and account.is_active:
            scope = users.principal_of(account).scope
            documents = sum((await files_by_scope(runtime.sessions, scope)).values())
    return [cl.Starter(label=label, message=message) for label, message in starters_for(documents)]


def starters_for(readable_documents: int) -> list[tuple[str, str]]:
    """The starters that can be answered: the policy question needs documents to read."""
    return [
        (label, message)
        for label, message in STARTERS
        if readable_documents or label != POLICY_STARTER
    ]


async def chat_profiles(
    user: cl.User | None = None, language: str | None = None
) -> list[cl.ChatProfile] | None:
    """One profile per configured model, the default first; none (no picker) with one."""
    names = current().chain.model_names
    if len(names) < 2:
        return None
    return [
        cl.ChatProfile(
            name=name,
            markdown_description=_MODEL_DESCRIPTIONS.get(name.split(":")[0], name),
            default=index == 0,
        )
        for index, name in enumerate(names)
    ]


_MODEL_DESCRIPTIONS = {
    "extractive": "Answers with quoted, cited sentences of your documents (no chat model).",
    "openai": "A chat model writes the answer from your documents, citing them.",
    "ollama": "A chat model (Ollama) writes the answer from your documents, citing them.",
    "local": "A chat model run on this server writes the answer, citing your documents.",
}


async def start_chat() -> None:
    cl.user_session.set(HISTORY, [])
    cl.user_session.set(ASKED, {})
    try:
        principal = await current_principal()
    except SignedOut:
        return  # the first message says so
    await _show_uploads_in_progress(principal)


async def resume_chat(thread: ThreadDict) -> None:
    """Restore the chain's memory from the stored conversation, and each answer's
    Regenerate button (Chainlit stores no actions)."""
    history, asked = memory_of(thread.get("steps", []))
    cl.user_session.set(HISTORY, history)
    cl.user_session.set(ASKED, asked)
    cl.user_session.set(ADDRESS_SENT, True)  # the browser is at the chat's address already
    for answer_id in asked:
        await _regenerate_action().send(for_id=answer_id)


def memory_of(steps: list[StepDict]) -> tuple[list[Turn], dict[str, Asked]]:
    """The chain's memory of a stored conversation as the live chat built it: each answered
    question with its latest answer (a regenerated one replaces the earlier); notices and
    errors, which stand outside any run, are not part of it. With it, what every answer
    answered, so that each can be regenerated."""
    by_id = {step["id"]: step for step in steps}
    answers_of: dict[str, list[StepDict]] = {}  # by question id, in the question's order
    for step in steps:
        run = by_id.get(step.get("parentId") or "")
        if step["type"] == "assistant_message" and run is not None and run["type"] == "run":
            question = by_id.get(run.get("parentId") or "")
            if question is not None and question["type"] == "user_message":
                answers_of.setdefault(question["id"], []).append(step)
    history: list[Turn] = []
    asked: dict[str, Asked] = {}
    for question_id, answers in answers_of.items():
        text = by_id[question_id].get("output") or ""
        for answer in answers:
            asked[answer["id"]] = Asked(text, question_id, before=len(history))
        history += [
            Turn("user", text),
            Turn("assistant", shown_answer(answers[-1].get("output") or "")),
        ]
    return history, asked


def _regenerate_action() -> cl.Action:
    return cl.Action(
        name=REGENERATE,
        payload={},
        label="Regenerate",
        tooltip="Answer this question again",
        icon="refresh-cw",
    )


async def may_read_shared(thread: ThreadDict, viewer: cl.User | None) -> bool:
    """Chainlit's check on GET /project/share/<id>: the owner, or a signed-in colleague
    once the owner shared the chat (the data layer gave a colleague the shared view)."""
    if viewer is None:
        return False
    shared = bool((thread.get("metadata") or {}).get(SHARED_KEY))
    return shared or viewer.identifier == thread.get("userIdentifier")


async def _announce_address() -> None:
    """Tell the browser the chat's id once its first message is handled, so the address
    becomes the chat's own (public/copilot.js): Chainlit's UI does so only when served
    at "/". Not sooner: the page must have taken the chat's id from Chainlit's
    first_interaction event (sent as the message arrives), or moving there resumes it."""
    if cl.user_session.get(ADDRESS_SENT):
        return
    cl.user_session.set(ADDRESS_SENT, True)
    await cl.send_window_message({"copilotChat": cl.context.session.thread_id})


async def on_message(message: cl.Message) -> None:
    files = [e for e in message.elements or [] if getattr(e, "path", None)]
    try:
        principal = await current_principal()
    except SignedOut as reason:
        _discard_chainlit_copies(files)
        await cl.Message(
            content=f"You are signed out ({reason}). Reload the page and sign in again."
        ).send()
        return
    try:
        text = without_nul(message.content or "").strip()
        if files:
            names = [_short_name(str(f.name)) for f in files]
            await _show_upload_as_names(message, files, names, text)
            if not text:  # a chat started by an upload is named after its files
                await _name_new_chat(principal, ", ".join(names))
        uploads = await _ingest_uploads(files, principal) if files else []
        if text.startswith(FILES_COMMAND):
            await _name_new_chat(principal, "My files")
            await _show_files()
            return
        if text:
            if uploads:  # a question sent with files is about them: answered once they are in
                await asyncio.wait(uploads)
            await _answer(Asked(text, message.id, before=-1), principal)
    except Exception:
        _discard_chainlit_copies(files)
        error_id = _log_error("handling a message of %s failed", principal.email)
        await cl.Message(
            content=f"Sorry, something went wrong (error id {error_id}). "
            "Your question is saved; please try again."
        ).send()
    finally:
        await _announce_address()


def _log_error(what: str, *args: object) -> str:
    """Log the current exception under a new error id, which the user is shown instead."""
    error_id = uuid.uuid4().hex[:12]
    log.exception(what + " (error id %s)", *args, error_id)
    return error_id


def _notice(content: str) -> cl.Message:
    """A system notice (upload progress, /files): shown in the conversation itself, outside
    the question's run, so it is neither folded into a step nor offered for rating."""
    notice = cl.Message(content=neutralise_images(content))
    notice.parent_id = None
    return notice


async def _name_new_chat(principal: Principal, title: str) -> None:
    """Name the chat after what started it, unless it already has a name."""
    await data_layer().name_new_chat(cl.context.session.thread_id, title, principal.user_id)


async def _show_upload_as_names(
    message: cl.Message, files: list[Any], names: list[str], text: str
) -> None:
    """Show an upload in the user's bubble by its names: the previews of Chainlit's copies
    would fail once the copies are gone, and a bubble with no text would be empty."""
    for upload in files:
        await cl.context.emitter.emit("remove_element", {"id": getattr(upload, "id", "")})
    message.elements = []
    if not text:
        message.content = neutralise_images("Uploaded " + ", ".join(names))
        await message.update()


async def regenerate(action: cl.Action) -> None:
    """Answer an answer's question again, in the same chat, as a new stored answer.

    The question is this session's own record of it (not the action's payload); the chain
    sees the conversation before it, and the new answer then takes the old one's place, so
    the memory never holds both."""
    try:
        principal = await current_principal()
    except SignedOut as reason:
        await cl.Message(content=f"You are signed out ({reason}). Sign in again.").send()
        return
    asked: Asked | None = (cl.user_session.get(ASKED) or {}).get(action.forId)
    if asked is None:
        await cl.Message(content="That answer can no longer be regenerated; ask again.").send()
        return
    # As Chainlit runs a message (action callbacks run bare): a task, so the composer
    # waits, and a run under the question, which the new answer's feedback buttons rate.
    # The run has Chainlit's own name: its frontend hides only runs of that name (else a
    # "Used regenerate" step would show).
    await cl.context.emitter.task_start()
    try:
        async with cl.Step(name="on_message", type="run", parent_id=asked.message_id):
            await _answer(asked, principal)
    except Exception:
        error_id = _log_error("regenerating an answer of %s failed", principal.email)
        await cl.Message(
            content=f"Sorry, something went wrong (error id {error_id}); please try again."
        ).send()
    finally:
        await cl.context.emitter.task_end()


async def _answer(asked: Asked, principal: Principal) -> None:
    """Answer the question, the turns before it in the chain's memory being the first
    `asked.before` (-1: all of them, a new question)."""
    runtime = current()
    question = asked.question
    if not principal.can(CHAT_PERMISSION):
        await cl.Message(
            content=f"Asking questions needs the {CHAT_PERMISSION} permission, which your "
            "role does not have. Your question is saved; ask an administrator for access."
        ).send()
        return
    decision = await runtime.limiter.check_and_record(principal.user_id, principal.roles)
    if not decision.allowed:
        wait = _duration(decision.retry_after_seconds or 0)
        await cl.Message(
            content=f"You have reached your limit of {decision.reason}. Your question is saved; "
            f"please try again in {wait}."
        ).send()
        return

    history: list[Turn] = cl.user_session.get(HISTORY) or []
    before = len(history) if asked.before < 0 else asked.before
    reply = cl.Message(content="")
    stream = TokenStream(reply)
    shown: dict[int, list[cl.Element]] = {}  # by citation number

    async def show_source(source: dict[str, Any]) -> None:
        await stream.flush()  # the text citing it first
        shown[source["number"]] = elements = source_elements(source, reply.id)
        for element in elements:
            await element.send(for_id=reply.id)

    # Success or failure, the answer is stored as this message of this chat and run.
    record_answer = functools.partial(
        data_layer().record_answer,
        message_id=reply.id,
        chat_id=cl.context.session.thread_id,
        owner_id=principal.user_id,
        run_id=_run_id(),
    )
    started = time.perf_counter()
    try:
        result = await runtime.chain.answer(
            question,
            principal.scope,
            history[:before],
            on_token=stream,
            permissions=principal.permissions,
            on_source=show_source,
            model=cl.user_session.get("chat_profile"),
        )
        await stream.flush(final=True)
    except Exception as error:
        error_id = _log_error("answering failed for %s", principal.email)
        for elements in shown.values():  # no sources beside an answer that is not there
            for element in elements:
                await element.remove()
        reply.content = (
            f"Sorry, I could not answer this time (error id {error_id}). Your question is "
            "saved; please try again."
        )
        await _send_unpersisted(reply)
        await record_answer(
            content=reply.content,
            sources=[],
            model=runtime.chain.model_name,
            latency_ms=round((time.perf_counter() - started) * 1000),
            error=f"{type(error).__name__}: {error} (error id {error_id})",
        )
        return

    reply.content = neutralise_images(result.text)
    # Sent with the message: the sources not shown while it streamed (none, normally).
    reply.elements = [  # type: ignore[assignment]
        element
        for source in result.cited_sources
        if source["number"] not in shown
        for element in source_elements(source, reply.id)
    ]
    reply.actions = [_regenerate_action()]
    await _send_unpersisted(reply)
    await record_answer(
        content=reply.content,
        sources=result.sources,
        model=result.model,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        latency_ms=result.latency_ms,
    )
    # In the memory the new answer follows its question; a regenerated one replaces the old.
    turns = [Turn("user", question), Turn("assistant", result.text)]
    cl.user_session.set(HISTORY, [*history[:before], *turns, *history[before + 2 :]])
    answered = {**(cl.user_session.get(ASKED) or {}), reply.id: replace(asked, before=before)}
    cl.user_session.set(ASKED, answered)
    tokens = (result.prompt_tokens or 0) + (result.completion_tokens or 0)
    await runtime.limiter.record_tokens(principal.user_id, tokens)
    async with runtime.sessions() as session:
        session.add(
            QueryLog(
                user_id=uuid.UUID(principal.user_id),
                question=question,
                latency_ms=result.latency_ms,
                result_count=len(result.cited),
            )
        )
        await session.commit()


async def _send_unpersisted(reply: cl.Message) -> None:
    """Show the finished answer; record_answer then stores it in one write.

    Left to itself, send() also has the data layer store the step in a task of its own,
    which races record_answer to insert the same message: two transactions per answer
    and often a lost insert retried.
    """
    reply.persisted = True
    await reply.send()


class TokenStream:
    """Streams tokens into a message, the first at once and then one frame per interval.

    Each frame sent is a socket.io packet and a websocket write; a model streaming a
    hundred tokens a second, or an answer that exists in full (extractive), would cost one
    per token, though a reader sees no difference at twenty frames a second. Tokens that
    arrive within `frame_seconds` of the last frame wait for the next token or `flush()`.
    """

    def __init__(self, message: cl.Message, frame_seconds: float = FRAME_SECONDS) -> None:
        self._message = message
        self._frame_seconds = frame_seconds
        self._pending: list[str] = []
        self._last_frame: float | None = None
        self._images = StreamingNeutraliser()  # no remote image ever reaches the browser

    async def __call__(self, token: str) -> None:
        self._pending.append(self._images.feed(token))
        now = time.monotonic()
        if self._last_frame is None or now - self._last_frame >= self._frame_seconds:
            await self.flush()

    async def flush(self, *, final: bool = False) -> None:
        """Send the tokens that are waiting, if any (`final`: also any held back)."""
        if final:
            self._pending.append(self._images.finish())
        text = "".join(self._pending)
        self._pending.clear()
        if text:
            self._last_frame = time.monotonic()
            await self._message.stream_token(text)


def source_elements(source: dict[str, Any], message_id: str) -> list[cl.Element]:
    """The chip and the marker link of a cited source of answer `message_id`
    (copilot.web.sources); a PDF opens at its page."""
    return cited_source_elements(
        source,
        message_id=message_id,
        chat_id=cl.context.session.thread_id,
        pdf_url=pdf_url(source),
    )


async def _ingest_uploads(files: list[Any], principal: Principal) -> list[asyncio.Task[None]]:
    """Queue the uploads; the tasks showing their progress, which end when they are done."""
    if not principal.can(UPLOAD_PERMISSION):
        _discard_chainlit_copies(files)
        names = ", ".join(_short_name(str(f.name)) for f in files)
        await _notice(
            f"Not added: {names}. Uploading files needs the {UPLOAD_PERMISSION} "
            "permission, which your role does not have."
        ).send()
        return []
    ownership = Ownership(
        uuid.UUID(principal.user_id),
        scope="personal",
        department_id=None,
        classification="internal",
    )
    # Every upload is taken out of Chainlit's folder before the first one is queued.
    taken = [(_short_name(str(f.name)), _take_in(f)) for f in files]
    following = []
    for name, path in taken:
        if path is None:
            text = f"{name} was removed before it could be added (the chat was closed or "
            text += "reloaded); please upload it again."
            await _notice(text).send()
            continue
        try:
            unreadable = await asyncio.to_thread(_unsupported, path, name)
            if unreadable:
                await _notice(f"Not added: {unreadable}").send()
                continue
            changed = await upload_offers.same_name_file(ownership.owner_id, name, path)
            if changed is not None:  # asked: Replace or Keep both (the upload waits)
                await upload_offers.offer(changed, await _version_of(changed.file_id))
                continue
            file_id = await _queue_upload(path, name, ownership)
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
        if file_id is not None:
            following.append(await _follow_upload(name, file_id))
    return following


async def _follow_upload(name: str, file_id: uuid.UUID) -> asyncio.Task[None]:
    message = _notice(f"{name}: queued")
    await message.send()
    return _follow(message, [file_id])


async def _version_of(file_id: uuid.UUID) -> int:
    async with current().sessions() as session:
        file = await session.get_one(File, file_id)
        return file.version


async def replace_upload(action: cl.Action) -> None:
    """ "Replace": the waiting upload becomes the next version of the file of its name."""
    await _answer_offer(action, replace=True)


async def keep_both_uploads(action: cl.Action) -> None:
    """ "Keep both": the waiting upload is added as a file of its own."""
    await _answer_offer(action, replace=False)


async def _answer_offer(action: cl.Action, *, replace: bool) -> None:
    try:
        principal = await current_principal()
    except SignedOut as reason:
        await cl.Message(content=f"You are signed out ({reason}). Sign in again.").send()
        return
    pending = upload_offers.take(action)
    if pending is None:
        await _notice("That choice is no longer open; upload the file again.").send()
        return
    await action.remove()
    try:
        if not principal.can(UPLOAD_PERMISSION):
            await _notice(f"Uploading files needs the {UPLOAD_PERMISSION} permission.").send()
        elif replace:
            text = await upload_offers.replace(pending, uuid.UUID(principal.user_id))
            await _notice(text).send()
        else:
            ownership = Ownership(uuid.UUID(principal.user_id), scope="personal")
            file_id = await _queue_upload(pending.path, pending.name, ownership)
            if file_id is not None:
                await _follow_upload(pending.name, file_id)
    except Exception:
        error_id = _log_error("answering the upload offer for %s failed", pending.name)
        await _notice(f"failed {pending.name}: it could not be added (error id {error_id})").send()
    finally:
        pending.discard()


async def end_chat() -> None:
    """Uploads still waiting for Replace or Keep both are not kept past the chat."""
    upload_offers.discard_all()


async def _queue_upload(path: Path, name: str, ownership: Ownership) -> uuid.UUID | None:
    """Admit one taken-in upload to the background queue: the id of the file to follow,
    or None when the chat has already said why there is nothing to follow."""
    runtime = current()
    try:
        admitted = await runtime.ingestion.submit(path, ownership, filename=name)
    except Exception:
        error_id = _log_error("queueing %s failed", name)
        await _notice(f"failed {name}: it could not be added (error id {error_id})").send()
        return None
    if isinstance(admitted, File):
        return admitted.id
    if admitted.outcome == "duplicate":
        async with runtime.sessions() as session:
            existing = await session.get(File, uuid.UUID(admitted.file_id))
        if existing is not None and existing.status in IN_PROGRESS:
            return existing.id  # the same bytes, being added already: show that one
    await _notice(_upload_summary(admitted)).send()
    return None


def _unsupported(path: Path, name: str) -> str | None:
    """Why the upload is of a kind Copilot cannot read (in words), from its first bytes;
    None when it may be read (the ingestion finds any deeper problem)."""
    with path.open("rb") as upload:
        head = upload.read(HEAD_BYTES)
    try:
        detect_kind(head, name)
    except UnreadableFile as error:
        return str(error)
    return None


#: Chats following uploads (a reference keeps each task alive until it ends).
_FOLLOWING: set[asyncio.Task[None]] = set()


def _follow(message: cl.Message, file_ids: list[uuid.UUID]) -> asyncio.Task[None]:
    """Update `message` with the files' progress until they are done, in the background.

    Progress is only sent to the browser; the final text is also stored as the message
    (a progress line a second would be a database write a second).
    """

    async def follow() -> None:
        async def show(rows: list[File]) -> None:
            message.content = neutralise_images(_progress_text(rows))
            await cl.context.emitter.update_step(message.to_dict())

        try:
            rows = await watch(current().kb, file_ids, show)
            message.content = neutralise_images(_finished_text(rows, len(file_ids)))
            await message.update()
        except Exception:
            _log_error("following uploads %s failed", file_ids)

    task = asyncio.create_task(follow())
    _FOLLOWING.add(task)
    task.add_done_callback(_FOLLOWING.discard)
    return task


def _progress_text(rows: list[File]) -> str:
    if len(rows) == 1 and rows[0].status in IN_PROGRESS:
        return _progress_line(rows[0])
    lines = [_progress_line(f) if f.status in IN_PROGRESS else _finished_line(f) for f in rows]
    return "Your uploads (this updates until they are done):\n" + "\n".join(
        f"- {line}" for line in lines
    )


def _progress_line(file: File) -> str:
    """ "handbook.docx: embedding 340 of 1200 chunks, 872 pages ▰▰▰▱▱▱▱▱▱▱ 41%"."""
    progress = IngestProgress.of(file)
    if file.status == "pending":
        return f"{file.original_name}: queued"
    detail = {
        "parsing": "reading the file",
        "chunking": "splitting it into chunks",
        "embedding": f"embedding {progress.done} of {progress.total} chunks",
        "indexing": "adding it to the search indexes",
    }.get(progress.stage, progress.stage)
    if progress.pages and progress.pages > 1:  # a text file reports 1 (it has none)
        detail += f", {progress.pages} pages"
    filled = progress.percent // 10
    bar = "▰" * filled + "▱" * (10 - filled)
    return f"{file.original_name}: {detail} {bar} {progress.percent}%"


def _finished_line(file: File) -> str:
    text = _upload_summary(result_of(file))
    if file.status == "ready":
        text += ". Only you can search it; ask away." if file.scope == "personal" else ""
    return text


def _finished_text(rows: list[File], expected: int) -> str:
    lines = [_finished_line(f) for f in rows]
    if len(rows) < expected:
        lines.append("an upload was deleted before it was added")
    return lines[0] if len(lines) == 1 else "\n".join(f"- {line}" for line in lines)


async def _show_uploads_in_progress(principal: Principal) -> None:
    """A new chat shows the user's uploads still being added, live, as their own chat does."""
    runtime = current()
    if not runtime.ingesting:
        return
    files = await in_progress(runtime.kb, uuid.UUID(principal.user_id))
    if not files:
        return
    message = _notice(_progress_text(files))
    await message.send()  # stored only if the chat is used (as Chainlit stores a thread)
    _follow(message, [f.id for f in files])


def _upload_summary(result: IngestResult) -> str:
    """The ingest summary, with an error id instead of an internal error's details."""
    error = result.error or ""
    if result.outcome == "failed" and _is_internal(error):
        error_id = uuid.uuid4().hex[:12]
        log.error("ingesting %s failed: %s (error id %s)", result.name, error, error_id)
        return f"failed {result.name}: it could not be added (error id {error_id})"
    return result.summary


def _is_internal(error: str) -> bool:
    """An error of ours or a backend's (not about the file): its text is not for users."""
    return error.startswith("internal error") or "index refused" in error


def _take_in(upload: Any) -> Path | None:
    """Move an upload from Chainlit's session folder into ours; Chainlit keeps no copy.

    Chainlit serves its copy at /project/file/<id> for as long as the session lives and
    deletes it when the session ends, even under a running ingestion. None: it was gone.
    """
    folder = current().settings.ensure_data_dir() / UPLOADS_FOLDER / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / "upload"
    try:
        shutil.copyfile(upload.path, target)
    except FileNotFoundError:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    finally:
        _discard_chainlit_copies([upload])
    return target


def _discard_chainlit_copies(files: list[Any]) -> None:
    """Remove Chainlit's copies of uploads and forget them in the session."""
    session = cl.context.session
    for upload in files:
        Path(str(upload.path)).unlink(missing_ok=True)
        known = getattr(session, "files", None)
        if isinstance(known, dict):
            for key in {getattr(upload, "chainlit_key", None), getattr(upload, "id", None)}:
                known.pop(key, None)


def _short_name(name: str) -> str:
    """The file name without NULs, at most MAX_FILE_NAME bytes, its extension kept."""
    name = without_nul(name).strip() or "file"
    if len(name.encode()) <= MAX_FILE_NAME:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = "…." + extension if dot and len(extension) <= 16 else "…"
    stem = stem if suffix != "…" else name
    while len((stem + suffix).encode()) > MAX_FILE_NAME:
        stem = stem[: -max(1, len(stem) // 10)]
    return stem + suffix


async def _show_files() -> None:
    """Point to the files page, where one's files are listed and deleted (with a confirmation)."""
    await _notice(
        f"Your files are on the **[My files]({FILES_PATH})** page: the status, size, pages "
        "and chunks of each, and a Delete button that asks first."
    ).send()


def _run_id() -> str | None:
    """The id of Chainlit's step for this question: its feedback buttons rate the run."""
    step = cl.context.current_step
    return step.id if step is not None and step.type == "run" else None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"
