"""Chainlit's persistence (thread history, resume, feedback) over Copilot's own tables.

Chainlit ships data layers with their own schema; ours already holds the conversation, so
this layer maps Chainlit's vocabulary onto it instead of keeping a second copy:

- users are `users` (created by our sign-in only, never by Chainlit),
- threads are `chats` (same UUID as Chainlit's thread id; deleting only sets deleted_at),
- steps are `messages`, for user and assistant messages only: runs, tools and other
  intermediate steps are not conversation and are not stored,
- feedback is `feedback`, one row per (message, chat owner),
- elements are built from `messages.sources`: the answer code stores its sources there,
  so nothing Chainlit sends as an element is stored (uploads go through ingestion), and
  sources in a step's metadata (which the browser can write) are ignored,
- an edit in the chat never deletes: removed messages get `deleted_at`, an edited
  question's earlier text is kept as a removed row pointing at it (`superseded_by`),
- a chat is written only for its owner: steps and answers for another user's chat, or a
  deleted one, are dropped; feedback is given, changed and removed only by the owner,
- each answer sits in the run (Chainlit's step for one handled question) it came from, as
  in the live chat: Chainlit shows the copy and thumbs buttons, and the rating, only for
  a run's last answer, so a resumed chat gets them back,
- a chat is read by its owner; anyone else (the acting user, see `request_user`) gets it
  only if its owner shared it (Chainlit's `is_shared`): read-only (no runs, no ratings),
  questions and answers only (notices name the owner's files), and every answer that
  drew on a file they may not read replaced by a note (the search rule, through
  `Clearance.of_reader`).

Text is stored without NUL characters (PostgreSQL refuses them), and Markdown images in
what is shown are neutralised (copilot.web.content_security).

Chainlit passes its own ids (UUID strings); anything that is not a UUID is "not found".
"""

from __future__ import annotations

import contextvars
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast

from chainlit.context import ChainlitContext, context_var
from chainlit.data.base import BaseDataLayer
from chainlit.data.utils import queue_until_user_message
from chainlit.element import Element, ElementDict
from chainlit.step import StepDict
from chainlit.types import Feedback as ChainlitFeedback
from chainlit.types import (
    FeedbackDict,
    PageInfo,
    PaginatedResponse,
    Pagination,
    ThreadDict,
    ThreadFilter,
)
from chainlit.user import PersistedUser
from chainlit.user import User as ChainlitUser
from sqlalchemy import and_, delete, exists, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot import users
from copilot.db.models import Chat, Feedback, File, Message, User
from copilot.db.types import utcnow
from copilot.review.reach import REVIEW_PERMISSION
from copilot.web.content_security import neutralise_images
from copilot.web.readable_chat import ReadableChat, shown_messages
from copilot.web.sources import shown_answer, source_element_dicts

log = logging.getLogger(__name__)

MessageStepType = Literal["user_message", "assistant_message"]
STEP_TYPE_OF_ROLE: dict[str, MessageStepType] = {
    "user": "user_message",
    "assistant": "assistant_message",
}
ROLE_OF_STEP_TYPE: dict[str, str] = {
    step_type: role for role, step_type in STEP_TYPE_OF_ROLE.items()
}
SHOWN_ROLES = tuple(STEP_TYPE_OF_ROLE)

#: Chat metadata key holding Chainlit's thread tags (chats have no tags column).
TAGS_KEY = "tags"
#: Where the web server serves a stored file; PDF sources open there at their page.
DEFAULT_FILE_URL_TEMPLATE = "/files/{file_id}"
PDF_MIME = "application/pdf"
NEW_CHAT_TITLE = "New chat"
TITLE_MAX_LENGTH = 255  # chats.title is VARCHAR(255), which PostgreSQL enforces
WRITE_ATTEMPTS = 3  # see CopilotDataLayer._write
#: Chainlit's flag, in a thread's metadata, of a chat its owner shared (PUT /project/thread/share).
SHARED_KEY = "is_shared"
SHARING_KEYS = frozenset({SHARED_KEY, "shared_at"})  # written only by the chat's owner
#: The name Chainlit gives the run of a handled question; its UI scores only such runs.
RUN_NAME = "on_message"

#: The signed-in user (email) of the HTTP request being served, set by the chat's route
#: guard (copilot.web.chat_guard): Chainlit's HTTP routes call this layer without a
#: Chainlit context, so this is how the layer knows who asks.
request_user: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "copilot_request_user", default=None
)


class NotYours(PermissionError):
    """The acting user is not the owner of the chat this write is about."""


_Result = TypeVar("_Result")
_StepWrite = TypeVar("_StepWrite", bound=Callable[..., Awaitable[None]])


def _queued_until_first_interaction(method: _StepWrite) -> _StepWrite:
    """Chainlit's queueing of step writes, without requiring a Chainlit context.

    In a browser session Chainlit holds step writes until the user's first message, when
    it calls update_thread (which creates the chat with its owner) and then replays them;
    a visitor who never writes leaves no empty chat. Outside Chainlit (our own code, the
    tests) there is no session to wait for, so the write runs at once.
    """
    queued = queue_until_user_message()(method)

    @functools.wraps(method)
    async def run(*args: Any, **kwargs: Any) -> None:
        if _chainlit_context() is None:
            await method(*args, **kwargs)
        else:
            await queued(*args, **kwargs)

    return cast(_StepWrite, run)


class CopilotDataLayer(BaseDataLayer):
    """Chainlit's data layer over chats, messages, feedback and users (see the module doc).

    The session factory is injected (the web runtime owns the engine), so importing or
    building this connects to nothing.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        assistant_name: str = "Copilot",
        file_url_template: str | None = DEFAULT_FILE_URL_TEMPLATE,
    ) -> None:
        self._sessions = sessions
        self._assistant_name = assistant_name
        self._file_url_template = file_url_template

    # --- Users ---------------------------------------------------------------------------

    async def get_user(self, identifier: str) -> PersistedUser | None:
        """The active user with this email; deactivated and unknown users get None."""
        async with self._sessions() as session:
            user = await _active_user_by_email(session, identifier)
            return _persisted_user(user) if user is not None else None

    async def create_user(self, user: ChainlitUser) -> PersistedUser | None:
        """Only returns the existing user: accounts are made by `copilot users`, not here."""
        return await self.get_user(user.identifier)

    # --- Threads -------------------------------------------------------------------------

    async def get_thread_author(self, thread_id: str) -> str:
        """The owner's email, or "" for a missing or deleted chat.

        Chainlit's `is_thread_author` answers 404 to "" and 401 to another email, so a
        deleted chat and someone else's chat both stay closed without raising a 500.
        """
        chat_id = _as_uuid(thread_id)
        if chat_id is None:
            return ""
        async with self._sessions() as session:
            email = await session.scalar(
                select(User.email)
                .join(Chat, Chat.user_id == User.id)
                .where(Chat.id == chat_id, Chat.deleted_at.is_(None))
            )
        return email or ""

    async def chat_owner(self, thread_id: str) -> tuple[str, bool] | None:
        """(owner's email, deleted?) of a chat that exists, deleted or not; else None.

        The socket guard uses it: a chat id that exists belongs to its owner for good.
        """
        chat_id = _as_uuid(thread_id)
        if chat_id is None:
            return None
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(User.email, Chat.deleted_at)
                    .join(Chat, Chat.user_id == User.id)
                    .where(Chat.id == chat_id)
                )
            ).one_or_none()
        return (row[0], row[1] is not None) if row is not None else None

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        """The chat with its messages as steps and sources as elements, as the acting user
        may see it: the owner's own chat in full (answers in their runs, with ratings), a
        shared chat read-only for anyone else signed in (see `ReadableChat`); else None.
        """
        chat_id = _as_uuid(thread_id)
        if chat_id is None:
            return None
        viewer = _acting_email()
        async with self._sessions() as session:
            found = await _visible_chat(session, chat_id)
            if found is None:
                return None
            chat, owner_email = found
            if viewer is not None and viewer != owner_email:
                return await self._shared_view(session, chat, owner_email, viewer)
            messages = await shown_messages(session, chat.id)
            feedback = await _owner_feedback(session, chat.user_id, [m.id for m in messages])
            files = await _source_files(session, messages)
        steps = self._conversation_steps(messages, owner_email, feedback)
        elements: list[ElementDict] = [
            element for m in messages for element in self._source_elements(m, files)
        ]
        return _thread_dict(chat, owner_email, steps, elements)

    async def _shared_view(
        self, session: AsyncSession, chat: Chat, owner_email: str, viewer_email: str
    ) -> ThreadDict | None:
        """A shared chat as a colleague reads it; None if not shared or not a user."""
        if not (chat.metadata_ or {}).get(SHARED_KEY):
            return None
        viewer = await _active_user_by_email(session, viewer_email)
        if viewer is None:
            return None
        readable = await ReadableChat.load(session, chat.id, users.principal_of(viewer))
        # Questions and answers only: notices (an upload's progress, "/files") name the
        # owner's own files, which are not the colleague's to see.
        shown = [m for m in readable.messages if m.role == "user" or m.run_id is not None]
        steps = [self._step_dict(m, owner_email, None) for m in shown]
        files = await _source_files(session, shown)
        elements: list[ElementDict] = [
            element for m in shown for element in self._source_elements(m, files)
        ]
        return _thread_dict(chat, owner_email, steps, elements)

    async def list_threads(
        self, pagination: Pagination, filters: ThreadFilter
    ) -> PaginatedResponse[ThreadDict]:
        """The user's chats, most recently active first, a page after `pagination.cursor`.

        The cursor is the last chat id of the previous page (Chainlit's endCursor); pages
        continue after that chat's (updated_at, id), so they don't repeat or skip rows.
        """
        if not filters.userId:
            raise ValueError("list_threads needs filters.userId")
        owner_id = _as_uuid(filters.userId)
        if owner_id is None:
            return _page([], has_next_page=False)
        page_size = max(1, pagination.first)
        query = select(Chat).where(Chat.user_id == owner_id, Chat.deleted_at.is_(None))
        if filters.search and filters.search.strip():
            query = query.where(_matches_search(filters.search.strip()))
        if filters.feedback is not None:
            query = query.where(_has_feedback(1 if filters.feedback == 1 else -1))
        async with self._sessions() as session:
            if pagination.cursor:
                query = query.where(await _after_cursor(session, owner_id, pagination.cursor))
            newest_first = query.order_by(Chat.updated_at.desc(), Chat.id.desc())
            chats = list((await session.scalars(newest_first.limit(page_size + 1))).all())
            owner_email = await session.scalar(select(User.email).where(User.id == owner_id))
        threads = [_thread_dict(chat, owner_email, [], []) for chat in chats[:page_size]]
        return _page(threads, has_next_page=len(chats) > page_size)

    async def update_thread(
        self,
        thread_id: str,
        name: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """Create the chat if missing (owned by `user_id`), else rename it / merge metadata.

        A chat is only created with a known owner; the owner never changes afterwards, and
        a deleted chat stays deleted. Metadata merges as Chainlit's own layers do: keys
        given as None are removed. Only a rename moves the chat up the history list;
        Chainlit re-saving its session metadata on every disconnect must not.
        """
        chat_id = _as_uuid(thread_id)
        if chat_id is None:
            log.warning("update_thread: ignoring thread id %r (not a UUID)", thread_id)
            return

        async def write(session: AsyncSession) -> None:
            nonlocal metadata
            chat = await session.get(Chat, chat_id)
            if chat is None:
                owner_id = await _existing_user_id(session, user_id)
                if owner_id is None:
                    return  # no owner to give it: Chainlit calls again once the user writes
                session.add(
                    Chat(
                        id=chat_id,
                        user_id=owner_id,
                        title=_title(name) or NEW_CHAT_TITLE,
                        metadata_=_merged_metadata({}, metadata, tags),
                    )
                )
                return
            if chat.deleted_at is not None:
                return
            if metadata and not SHARING_KEYS.isdisjoint(metadata):
                owner = await session.scalar(select(User.email).where(User.id == chat.user_id))
                if _acting_email() not in (None, owner):
                    log.warning("update_thread: only the owner shares chat %s", chat_id)
                    metadata = {k: v for k, v in metadata.items() if k not in SHARING_KEYS}
            new_title = _title(name)
            renamed = new_title is not None and new_title != chat.title
            new_metadata = _merged_metadata(chat.metadata_ or {}, metadata, tags)
            values: dict[Any, Any] = {}
            if renamed:
                values[Chat.title] = new_title  # updated_at follows by its onupdate
            if new_metadata != (chat.metadata_ or {}):
                values[Chat.metadata_] = new_metadata
                if not renamed:
                    values[Chat.updated_at] = Chat.updated_at  # not activity: keep the order
            if values:
                await session.execute(update(Chat).where(Chat.id == chat_id).values(values))

        await self._write(write)

    async def name_new_chat(self, thread_id: str, title: str, user_id: str) -> None:
        """Title a chat still called "New chat" (creating it, owned by `user_id`, if Chainlit
        has not yet): one started by an upload or a command, which Chainlit leaves untitled."""
        chat_id, new_title = _as_uuid(thread_id), _title(title)
        if chat_id is None or new_title is None:
            return

        async def write(session: AsyncSession) -> None:
            chat = await session.get(Chat, chat_id)
            if chat is None:
                owner_id = await _existing_user_id(session, user_id)
                if owner_id is not None:
                    session.add(Chat(id=chat_id, user_id=owner_id, title=new_title))
                return
            if chat.deleted_at is None and chat.user_id == _as_uuid(user_id):
                await session.execute(
                    update(Chat)
                    .where(Chat.id == chat_id, Chat.title == NEW_CHAT_TITLE)
                    .values({Chat.title: new_title})
                )

        await self._write(write)

    async def delete_thread(self, thread_id: str) -> None:
        """Soft delete: the chat disappears from the UI but stays for audit and analytics."""
        chat_id = _as_uuid(thread_id)
        if chat_id is None:
            return

        async def write(session: AsyncSession) -> None:
            await session.execute(
                update(Chat)
                .where(Chat.id == chat_id, Chat.deleted_at.is_(None))
                .values({Chat.deleted_at: utcnow(), Chat.updated_at: Chat.updated_at})
            )

        await self._write(write)

    # --- Steps ---------------------------------------------------------------------------

    @_queued_until_first_interaction
    async def create_step(self, step_dict: StepDict) -> None:
        await self._upsert_message(step_dict)

    @_queued_until_first_interaction
    async def update_step(self, step_dict: StepDict) -> None:
        await self._upsert_message(step_dict)

    @_queued_until_first_interaction
    async def delete_step(self, step_id: str) -> None:
        message_id = _as_uuid(step_id)
        if message_id is None:
            return

        async def write(session: AsyncSession) -> None:
            # Kept for the admin transcript; the chat no longer shows it.
            await session.execute(
                update(Message)
                .where(Message.id == message_id, Message.deleted_at.is_(None))
                .values({Message.deleted_at: utcnow()})
            )

        await self._write(write)

    async def get_favorite_steps(self, user_id: str) -> list[StepDict]:
        """Favorites are off in our config and messages have no column to keep the flag."""
        return []

    async def set_step_favorite(self, step_dict: StepDict, favorite: bool) -> StepDict:
        """Not stored (see get_favorite_steps); the step is returned unchanged."""
        return step_dict

    async def _upsert_message(self, step: StepDict) -> None:
        """Insert or update the message with the step's id, for user/assistant steps only.

        The answer code writes the same assistant message directly (sources, model, token
        counts, latency), before or after Chainlit: this write never clears those fields,
        sets content only when the step has some, and creates a missing chat for the
        Chainlit session's user (a step may arrive before update_thread). Sources are only
        ever set by the answer code (record_answer): the step's metadata comes from the
        browser. A step for a deleted chat, another user's chat or a removed message is
        dropped; a question whose text changes (an edit) keeps its earlier text as a
        removed version.
        """
        role = ROLE_OF_STEP_TYPE.get(step.get("type", ""))
        message_id = _as_uuid(step.get("id"))
        chat_id = _as_uuid(step.get("threadId"))
        if role is None or message_id is None or chat_id is None:
            return
        output = without_nul(step.get("output") or "")
        created_at = _parse_iso(step.get("createdAt"))

        async def write(session: AsyncSession) -> None:
            chat = await session.get(Chat, chat_id)
            session_user_id = await _chainlit_session_user_id(session)
            if chat is None:
                if session_user_id is None:
                    log.warning("step %s: chat %s is unknown and has no owner", message_id, chat_id)
                    return
                chat = Chat(id=chat_id, user_id=session_user_id)
                session.add(chat)
            elif chat.deleted_at is not None:
                log.warning("step %s: chat %s is deleted; not stored", message_id, chat_id)
                return
            elif _chainlit_context() is not None and chat.user_id != session_user_id:
                log.warning("step %s: chat %s is another user's; not stored", message_id, chat_id)
                return
            message = await session.get(Message, message_id)
            if message is None:
                message = Message(id=message_id, chat_id=chat_id, role=role, content=output)
                session.add(message)
                chat.updated_at = utcnow()  # a new message is activity: the chat moves up
            elif message.chat_id != chat_id:
                log.warning("step %s: belongs to another chat; not moved", message_id)
                return
            elif message.deleted_at is not None:
                return
            elif output and output != message.content:
                if message.role == "user" and message.content:
                    session.add(_earlier_version(message))
                message.content = output
            if created_at is not None:
                message.created_at = created_at
            if step.get("isError") and not message.error:
                message.error = output or "error"

        await self._write(write)

    async def record_answer(
        self,
        *,
        message_id: str,
        chat_id: str,
        owner_id: str,
        content: str,
        sources: list[dict[str, Any]],
        model: str | None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        latency_ms: int | None = None,
        error: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Store an assistant message with what only the answer code knows.

        Runs before or after Chainlit's own step write for the same message id; whichever
        comes second updates the row the first one inserted.
        """
        message_uuid, chat_uuid = uuid.UUID(message_id), uuid.UUID(chat_id)
        owner_uuid = uuid.UUID(owner_id)

        async def write(session: AsyncSession) -> None:
            chat = await session.get(Chat, chat_uuid)
            if chat is None:
                chat = Chat(id=chat_uuid, user_id=owner_uuid)
                session.add(chat)
            elif chat.user_id != owner_uuid or chat.deleted_at is not None:
                # Never into someone else's chat, nor one its owner deleted.
                log.warning("answer %s: chat %s is not open to %s", message_id, chat_id, owner_id)
                return
            message = await session.get(Message, message_uuid)
            if message is None:
                message = Message(id=message_uuid, chat_id=chat_uuid, role="assistant")
                session.add(message)
            elif message.chat_id != chat_uuid:
                log.warning("answer %s: belongs to another chat; not moved", message_id)
                return
            message.content = without_nul(content)
            message.sources = sources
            message.model = model
            message.prompt_tokens = prompt_tokens
            message.completion_tokens = completion_tokens
            message.latency_ms = latency_ms
            message.error = error
            message.run_id = _as_uuid(run_id)
            chat.updated_at = utcnow()

        await self._write(write)

    # --- Feedback ------------------------------------------------------------------------

    async def upsert_feedback(self, feedback: ChainlitFeedback) -> str:
        """Store 1 as +1 and 0 as -1, one row per (message, chat owner); returns its id.

        Only the chat's owner gives feedback: when the acting user is known (the Chainlit
        session's, or the HTTP request's from the route guard) and is someone else, this
        raises NotYours. A comment left out (None) keeps the previous one.
        """
        message_id = _as_uuid(feedback.forId)
        if message_id is None:
            raise ValueError(f"no message {feedback.forId!r}")
        value = 1 if feedback.value == 1 else -1

        async def write(session: AsyncSession) -> str:
            nonlocal message_id
            # Live chats rate the run that produced an answer; resumed chats the message.
            answer_of_run = await session.scalar(
                select(Message.id)
                .where(Message.run_id == message_id)
                .order_by(Message.created_at.desc())
                .limit(1)
            )
            message_id = answer_of_run or message_id
            rated = (
                await session.execute(
                    select(Chat.id, Chat.user_id, User.email)
                    .join(Message, Message.chat_id == Chat.id)
                    .join(User, User.id == Chat.user_id)
                    .where(Message.id == message_id, Chat.deleted_at.is_(None))
                )
            ).first()
            if rated is None:
                raise ValueError(f"no message {feedback.forId!r}")
            chat_id, owner_id, owner_email = rated
            _require_owner(owner_email)
            row = await session.scalar(
                select(Feedback).where(
                    Feedback.message_id == message_id, Feedback.user_id == owner_id
                )
            )
            if row is None:
                row = Feedback(
                    id=uuid.uuid4(), message_id=message_id, chat_id=chat_id, user_id=owner_id
                )
                session.add(row)
            row.value = value
            if feedback.comment is not None:
                row.comment = without_nul(feedback.comment)
            return str(row.id)

        return await self._write(write)

    async def delete_feedback(self, feedback_id: str) -> bool:
        row_id = _as_uuid(feedback_id)
        if row_id is None:
            return False

        async def write(session: AsyncSession) -> bool:
            owner_email = await session.scalar(
                select(User.email)
                .join(Chat, Chat.user_id == User.id)
                .join(Feedback, Feedback.chat_id == Chat.id)
                .where(Feedback.id == row_id)
            )
            if owner_email is None:
                return False
            _require_owner(owner_email)
            deleted = await session.scalar(
                delete(Feedback).where(Feedback.id == row_id).returning(Feedback.id)
            )
            return deleted is not None

        return await self._write(write)

    async def rated_chat_owner(self, for_id: str) -> str | None:
        """The owner's email of the open chat holding the answer (or run) `for_id`."""
        message_id = _as_uuid(for_id)
        if message_id is None:
            return None
        async with self._sessions() as session:
            answer_of_run = await session.scalar(
                select(Message.id).where(Message.run_id == message_id).limit(1)
            )
            owner: str | None = await session.scalar(
                select(User.email)
                .join(Chat, Chat.user_id == User.id)
                .join(Message, Message.chat_id == Chat.id)
                .where(Message.id == (answer_of_run or message_id), Chat.deleted_at.is_(None))
            )
        return owner

    async def feedback_owner(self, feedback_id: str) -> str | None:
        """The email of the owner of the chat a feedback row belongs to; None if no row."""
        row_id = _as_uuid(feedback_id)
        if row_id is None:
            return None
        async with self._sessions() as session:
            owner: str | None = await session.scalar(
                select(User.email)
                .join(Chat, Chat.user_id == User.id)
                .join(Feedback, Feedback.chat_id == Chat.id)
                .where(Feedback.id == row_id)
            )
        return owner

    # --- Elements ------------------------------------------------------------------------

    async def create_element(self, element: Element) -> None:
        """Stores nothing, on purpose.

        Source elements are rebuilt from `messages.sources` (get_thread, get_element), and
        files a user uploads ("file", "pdf", ...) are taken in by our ingestion, which
        keeps the bytes and indexes them: a second copy here would escape its access rules.
        """

    async def get_element(self, thread_id: str, element_id: str) -> ElementDict | None:
        """The source element with this id, rebuilt from the chat's messages; else None."""
        thread = await self.get_thread(thread_id)
        if thread is None:
            return None
        return next((e for e in thread["elements"] or [] if e.get("id") == element_id), None)

    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        """Nothing to delete: elements are not stored (see create_element)."""

    # --- The rest of Chainlit's interface ---------------------------------------------------

    async def build_debug_url(self) -> str:
        return ""

    async def close(self) -> None:
        """The engine belongs to the web runtime, which disposes of it."""

    # --- Building Chainlit's dicts ------------------------------------------------------------

    def _conversation_steps(
        self, messages: Sequence[Message], owner_email: str, feedback: Mapping[uuid.UUID, Feedback]
    ) -> list[StepDict]:
        """The messages as steps, each answer inside its run as the live chat has it.

        Chainlit nests a run under the question it handles and its answers under the run,
        and gives the copy and thumbs buttons to a run's last answer; the thumbs show the
        run's feedback (the rating of its last answer, which is what rating the run rates,
        see upsert_feedback). Messages stored without a run (notices: an upload's progress,
        an error) have no buttons; they sit under the question they followed, so they keep
        their place before or after its answer.
        """
        last_answer_of_run = {m.run_id: m for m in messages if m.run_id is not None}
        steps: list[StepDict] = []
        question: Message | None = None
        runs_shown: set[uuid.UUID] = set()
        for message in messages:
            step = self._step_dict(message, owner_email, feedback.get(message.id))
            if message.role == "user":
                question = message
            elif message.run_id is not None:
                if message.run_id not in runs_shown:
                    runs_shown.add(message.run_id)
                    last = last_answer_of_run[message.run_id]
                    steps.append(_run_step(message, question, feedback.get(last.id)))
                step["parentId"] = str(message.run_id)
            elif question is not None:
                step["parentId"] = str(question.id)
            steps.append(step)
        return steps

    def _step_dict(self, message: Message, owner_email: str, feedback: Feedback | None) -> StepDict:
        created_at = _iso(message.created_at)
        step: StepDict = {
            "id": str(message.id),
            "threadId": str(message.chat_id),
            "parentId": None,
            "type": STEP_TYPE_OF_ROLE[message.role],
            "name": owner_email if message.role == "user" else self._assistant_name,
            "input": "",
            "output": neutralise_images(shown_answer(message.content)),
            "createdAt": created_at,
            "start": created_at,
            "end": created_at,
            "streaming": False,
            "isError": message.error is not None,
            "metadata": _message_metadata(message),
        }
        if feedback is not None:
            step["feedback"] = _feedback_dict(feedback)
        return step

    def _source_elements(
        self, message: Message, files: Mapping[uuid.UUID, File]
    ) -> list[ElementDict]:
        """The elements of an answer's cited sources, as the live answer sent them
        (copilot.web.sources); a PDF whose file still exists opens at its page."""
        if message.role != "assistant":
            return []
        elements: list[ElementDict] = []
        for position, source in enumerate(message.sources or [], start=1):
            # Only what the answer cites is shown as a citation (older rows lack the flag).
            if not isinstance(source, dict) or source.get("cited") is False:
                continue
            if source.get("redacted"):  # a file this reader may not read: no element at all
                continue
            file_id = _as_uuid(source.get("file_id"))
            stored = files.get(file_id) if file_id is not None else None
            pdf_url = None
            if stored is not None and stored.mime_type == PDF_MIME and self._file_url_template:
                pdf_url = self._file_url_template.format(file_id=stored.id)
            elements += source_element_dicts(
                source,
                message_id=str(message.id),
                chat_id=str(message.chat_id),
                pdf_url=pdf_url,
                number=source.get("number") or position,
            )
        return elements

    # --- Transactions ----------------------------------------------------------------------

    async def _write(self, write: Callable[[AsyncSession], Awaitable[_Result]]) -> _Result:
        """Run `write` in one transaction, again when a concurrent writer won an insert.

        Chainlit's step tasks, update_thread and the answer code race to insert the same
        chat and message; the loser's next attempt finds the row and updates it. A write
        inserts at most a chat and a message, so it can lose at most twice.
        """
        for _ in range(WRITE_ATTEMPTS - 1):
            try:
                return await self._in_transaction(write)
            except IntegrityError:
                log.debug("write lost an insert race; retrying", exc_info=True)
        return await self._in_transaction(write)

    async def _in_transaction(self, write: Callable[[AsyncSession], Awaitable[_Result]]) -> _Result:
        async with self._sessions() as session, session.begin():
            return await write(session)


# --- Queries ------------------------------------------------------------------------------


async def _active_user_by_email(session: AsyncSession, email: str) -> User | None:
    try:
        user = await users.get_user(session, email)
    except users.AccountError:  # not an email address: nobody has it
        return None
    return user if user is not None and user.is_active else None


async def _existing_user_id(session: AsyncSession, user_id: str | None) -> uuid.UUID | None:
    candidate = _as_uuid(user_id)
    if candidate is None:
        return None
    return await session.scalar(select(User.id).where(User.id == candidate))


async def _chainlit_session_user_id(session: AsyncSession) -> uuid.UUID | None:
    """The signed-in user of the current Chainlit session, if any, as a users.id."""
    context = _chainlit_context()
    user = context.session.user if context is not None else None
    if isinstance(user, PersistedUser):
        return await _existing_user_id(session, user.id)
    if user is not None:
        found = await _active_user_by_email(session, user.identifier)
        return found.id if found is not None else None
    return None


async def _visible_chat(session: AsyncSession, chat_id: uuid.UUID) -> tuple[Chat, str] | None:
    row = (
        await session.execute(
            select(Chat, User.email)
            .join(User, User.id == Chat.user_id)
            .where(Chat.id == chat_id, Chat.deleted_at.is_(None))
        )
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


async def _owner_feedback(
    session: AsyncSession, owner_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Feedback]:
    if not message_ids:
        return {}
    rows = await session.scalars(
        select(Feedback).where(Feedback.user_id == owner_id, Feedback.message_id.in_(message_ids))
    )
    return {row.message_id: row for row in rows}


async def _source_files(
    session: AsyncSession, messages: Sequence[Message]
) -> dict[uuid.UUID, File]:
    """The files the sources point to and that still exist (deleted ones get no link)."""
    file_ids = {
        file_id
        for message in messages
        for source in message.sources or []
        if isinstance(source, dict) and (file_id := _as_uuid(source.get("file_id"))) is not None
    }
    if not file_ids:
        return {}
    rows = await session.scalars(select(File).where(File.id.in_(file_ids)))
    return {row.id: row for row in rows}


def _matches_search(term: str) -> Any:
    """Title or any shown message contains `term`, ignoring case, % and _ taken literally."""
    in_messages = exists().where(
        Message.chat_id == Chat.id,
        Message.role.in_(SHOWN_ROLES),
        Message.deleted_at.is_(None),
        Message.content.icontains(term, autoescape=True),
    )
    return or_(Chat.title.icontains(term, autoescape=True), in_messages)


def _has_feedback(value: int) -> Any:
    return exists().where(
        Message.chat_id == Chat.id,
        Feedback.message_id == Message.id,
        Feedback.user_id == Chat.user_id,
        Feedback.value == value,
    )


async def _after_cursor(session: AsyncSession, owner_id: uuid.UUID, cursor: str) -> Any:
    """Rows after the cursor chat in (updated_at desc, id desc); an unknown cursor: all."""
    cursor_id = _as_uuid(cursor)
    anchor = (
        (
            await session.execute(
                select(Chat.updated_at, Chat.id).where(
                    Chat.id == cursor_id, Chat.user_id == owner_id
                )
            )
        ).one_or_none()
        if cursor_id is not None
        else None
    )
    if anchor is None:
        return true()
    updated_at, anchor_id = anchor
    return or_(
        Chat.updated_at < updated_at, and_(Chat.updated_at == updated_at, Chat.id < anchor_id)
    )


# --- Small conversions ----------------------------------------------------------------------


def without_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL: dropped, so the message is saved."""
    return text.replace("\x00", "")


def _acting_email() -> str | None:
    """Who is asking: the Chainlit session's user, else the HTTP request's (route guard)."""
    context = _chainlit_context()
    user = context.session.user if context is not None else None
    if user is not None:
        return user.identifier
    return request_user.get()


def _require_owner(owner_email: str) -> None:
    acting = _acting_email()
    if acting is not None and acting != owner_email:
        raise NotYours("only the chat's owner may rate its answers or remove the rating")


def _earlier_version(message: Message) -> Message:
    """A removed copy of a question before its edit, pointing at the edited message."""
    return Message(
        id=uuid.uuid4(),
        chat_id=message.chat_id,
        role=message.role,
        content=message.content,
        created_at=message.created_at,
        deleted_at=utcnow(),
        superseded_by=message.id,
    )


def _chainlit_context() -> ChainlitContext | None:
    try:
        return context_var.get()
    except LookupError:
        return None


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    """Chainlit's timestamp form: UTC ISO 8601 with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _title(name: str | None) -> str | None:
    """The chat title `name` gives, if any: a chat command ("/files") names no chat."""
    title = " ".join(without_nul(name or "").split())
    if title.startswith("/"):
        return None
    return title[:TITLE_MAX_LENGTH] or None


def _merged_metadata(
    current: Mapping[str, Any], incoming: Mapping[str, Any] | None, tags: list[str] | None
) -> dict[str, Any]:
    merged = dict(current)
    for key, value in (incoming or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if tags is not None:
        merged[TAGS_KEY] = list(tags)
    return merged


def _persisted_user(user: User) -> PersistedUser:
    return PersistedUser(
        id=str(user.id),
        identifier=user.email,
        display_name=user.display_name,
        createdAt=_iso(user.created_at),
        metadata={
            "department": user.department.code if user.department else None,
            "roles": sorted(role.name for role in user.roles),
            # public/copilot.js links the admin pages in the user menu when true.
            "may_review": any(
                permission.name == REVIEW_PERMISSION
                for role in user.roles
                for permission in role.permissions
            ),
        },
    )


def _thread_dict(
    chat: Chat,
    owner_email: str | None,
    steps: list[StepDict],
    elements: list[ElementDict],
) -> ThreadDict:
    metadata = dict(chat.metadata_ or {})
    tags = metadata.pop(TAGS_KEY, None)
    return {
        "id": str(chat.id),
        "createdAt": _iso(chat.created_at),
        "name": chat.title,
        "userId": str(chat.user_id),
        "userIdentifier": owner_email,
        "tags": tags if isinstance(tags, list) else None,
        "metadata": metadata,
        "steps": steps,
        "elements": elements,
    }


def _message_metadata(message: Message) -> dict[str, Any]:
    metadata: dict[str, Any] = {"sources": list(message.sources or [])}
    details = {
        "model": message.model,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "latency_ms": message.latency_ms,
        "error": message.error,
    }
    metadata.update({key: value for key, value in details.items() if value is not None})
    return metadata


def _run_step(answer: Message, question: Message | None, feedback: Feedback | None) -> StepDict:
    """The run of `answer` (its first answer, as the run started before it), under `question`."""
    assert answer.run_id is not None
    moment = _iso(answer.created_at)
    run: StepDict = {
        "id": str(answer.run_id),
        "threadId": str(answer.chat_id),
        "parentId": str(question.id) if question is not None else None,
        "type": "run",
        "name": RUN_NAME,
        "input": "",
        "output": "",
        "createdAt": moment,
        "start": moment,
        "end": moment,
        "streaming": False,
        "isError": False,
        "metadata": {},
    }
    if feedback is not None:
        run["feedback"] = _feedback_dict(feedback, for_id=str(answer.run_id))
    return run


def _feedback_dict(feedback: Feedback, for_id: str | None = None) -> FeedbackDict:
    return {
        "id": str(feedback.id),
        "forId": for_id or str(feedback.message_id),
        "value": 1 if feedback.value > 0 else 0,
        "comment": feedback.comment,
    }


def _page(threads: list[ThreadDict], *, has_next_page: bool) -> PaginatedResponse[ThreadDict]:
    return PaginatedResponse(
        pageInfo=PageInfo(
            hasNextPage=has_next_page,
            startCursor=threads[0]["id"] if threads else None,
            endCursor=threads[-1]["id"] if threads else None,
        ),
        data=threads,
    )
