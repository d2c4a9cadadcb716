"""The schema: PostgreSQL (or SQLite when embedded) is the source of truth.

Taken from the seed designs where they serve this product: users, departments and
role-based permissions; chats, messages and feedback; uploaded files and their chunks
(every chunk's text is kept so the search indexes can be rebuilt from here); an audit
log and a query log for analytics. Alembic migrations are the only way this changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from copilot.db.types import PortableJSON, UTCDateTime, utcnow

FILE_STATUSES = ("pending", "processing", "ready", "failed")
FILE_SCOPES = ("personal", "department", "company")
CLASSIFICATIONS = ("public", "internal", "confidential", "secret")
MESSAGE_ROLES = ("user", "assistant", "system")
SOURCE_KINDS = ("folder",)
#: A job runs, then succeeded (every file in step), partial (some files failed) or failed
#: (the job itself stopped: the source unreadable, or its process died).
SYNC_STATUSES = ("running", "succeeded", "partial", "failed")
#: Marks schema items that exist on PostgreSQL only (migrations and comparisons skip them
#: elsewhere): see `copilot.db.migrate.include_object`.
POSTGRESQL_ONLY = "postgresql_only"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: PortableJSON}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- People and permissions -------------------------------------------------------------


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    department_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL"), index=True
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[datetime | None]

    department: Mapped[Department | None] = relationship(lazy="selectin")
    roles: Mapped[list[Role]] = relationship(secondary="user_roles", lazy="selectin")


class Role(Base):
    __tablename__ = "roles"
    __table_args__ = (
        CheckConstraint(_in("max_classification", CLASSIFICATIONS), name="max_classification"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_system_role: Mapped[bool] = mapped_column(Boolean, default=False)
    # The most sensitive classification this role may read; all less sensitive ones follow.
    max_classification: Mapped[str] = mapped_column(String(16), default="internal")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    permissions: Mapped[list[Permission]] = relationship(
        secondary="role_permissions", lazy="selectin"
    )


class Permission(Base):
    __tablename__ = "permissions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    resource: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(Text, default="")


class RolePermission(Base):
    __tablename__ = "role_permissions"

    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True
    )


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Conversations ----------------------------------------------------------------------


class Chat(Timestamped, Base):
    __tablename__ = "chats"
    __table_args__ = (
        Index("ix_chats_user_updated", "user_id", "updated_at"),
        # The admin's conversation list: newest activity (or start) first, across users.
        Index("ix_chats_updated", "updated_at"),
        Index("ix_chats_created", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(255), default="New chat")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    deleted_at: Mapped[datetime | None]

    messages: Mapped[list[Message]] = relationship(
        back_populates="chat", order_by="Message.created_at", cascade="all, delete-orphan"
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("role", MESSAGE_ROLES), name="role"),
        Index("ix_messages_chat_created", "chat_id", "created_at"),
        # Admin review: usage by date, conversations with errors, and (PostgreSQL only)
        # full-text search over what was said; SQLite searches without an index.
        Index("ix_messages_created", "created_at"),
        Index(
            "ix_messages_chat_error",
            "chat_id",
            postgresql_where=text("error IS NOT NULL"),
            sqlite_where=text("error IS NOT NULL"),
        ),
        Index(
            "ix_messages_content_search",
            text("to_tsvector('english'::regconfig, content)"),
            postgresql_using="gin",
            info={POSTGRESQL_ONLY: True},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    sources: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON, default=list)
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # The Chainlit run (one handled question) this answer belongs to: the chat UI sends
    # feedback for the run, and this is how it finds the answer.
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Editing a question in the chat removes every later message: they are kept, with the
    # time they left the conversation here (NULL: shown). The chat hides them; the admin
    # transcript shows them.
    deleted_at: Mapped[datetime | None]
    # An earlier version of an edited question: the id of the message that now holds the
    # edited text (this row keeps the original text and time; deleted_at is the edit).
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    chat: Mapped[Chat] = relationship(back_populates="messages")


class Feedback(Timestamped, Base):
    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("value IN (-1, 1)", name="value"),
        UniqueConstraint("message_id", "user_id", name="uq_feedback_message_user"),
        Index("ix_feedback_value_created", "value", "created_at"),
        Index("ix_feedback_chat_value", "chat_id", "value"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # The rated message's chat, kept here so "conversations with negative feedback" is one
    # index lookup per chat instead of a walk through its messages.
    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)


# --- Knowledge --------------------------------------------------------------------------


class File(Timestamped, Base):
    __tablename__ = "files"
    __table_args__ = (
        CheckConstraint(_in("status", FILE_STATUSES), name="status"),
        CheckConstraint(_in("scope", FILE_SCOPES), name="scope"),
        CheckConstraint(_in("classification", CLASSIFICATIONS), name="classification"),
        CheckConstraint("size_bytes > 0", name="size_positive"),
        # One copy of the same bytes per owner among uploads; a data source's files are
        # its folder's, where two paths may hold the same bytes.
        Index(
            "uq_files_owner_sha256",
            "owner_id",
            "sha256",
            unique=True,
            sqlite_where=text("source_id IS NULL"),
            postgresql_where=text("source_id IS NULL"),
        ),
        Index("ix_files_owner_status", "owner_id", "status"),
        UniqueConstraint("source_id", "source_path", name="uq_files_source_path"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    original_name: Mapped[str] = mapped_column(String(500))
    mime_type: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[str] = mapped_column(String(16), default="personal")
    department_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL")
    )
    classification: Mapped[str] = mapped_column(String(16), default="internal")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    page_count: Mapped[int | None] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    indexed_at: Mapped[datetime | None]
    # The running ingestion's last report (copilot.knowledge.jobs.IngestProgress), written
    # about once a second: every chat of the owner shows it, and its updated_at is the
    # heartbeat that tells a running ingestion from one a crash interrupted. NULL: none.
    progress: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    # The current version's number (its history: file_versions); search and answers see
    # only the current version's chunks.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # Keyword labels (a source's folder path, or set by admins): filters in both indexes.
    tags: Mapped[list[str]] = mapped_column(PortableJSON, default=list, server_default="[]")
    # Set for a data source's file: which source, where in it (a POSIX path relative to
    # the source's root), and the modification time its current version was read at.
    source_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("data_sources.id", ondelete="CASCADE"), index=True
    )
    source_path: Mapped[str | None] = mapped_column(Text)
    source_modified_at: Mapped[datetime | None]

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="file", order_by="Chunk.ordinal", cascade="all, delete-orphan"
    )
    versions: Mapped[list[FileVersion]] = relationship(
        back_populates="file", order_by="FileVersion.version", cascade="all, delete-orphan"
    )


class FileVersion(Base):
    """One version of a file as it was indexed: the current one and those it replaced."""

    __tablename__ = "file_versions"
    __table_args__ = (UniqueConstraint("file_id", "version", name="uq_file_versions_file_version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    modified_at: Mapped[datetime | None]  # at the source, when it has one
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    file: Mapped[File] = relationship(back_populates="versions")


class DataSource(Timestamped, Base):
    """Where company or department knowledge is synced from (a folder, for now); its files
    belong to `owner_id` (who added it) with its scope, department and classification."""

    __tablename__ = "data_sources"
    __table_args__ = (
        CheckConstraint(_in("kind", SOURCE_KINDS), name="kind"),
        CheckConstraint(_in("scope", ("department", "company")), name="scope"),
        CheckConstraint(_in("classification", CLASSIFICATIONS), name="classification"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(Text)  # a folder's absolute path
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(16))
    department_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL")
    )
    classification: Mapped[str] = mapped_column(String(16), default="internal")
    tags: Mapped[list[str]] = mapped_column(PortableJSON, default=list)  # every file's
    last_synced_at: Mapped[datetime | None]

    jobs: Mapped[list[SyncJob]] = relationship(
        back_populates="source", order_by="SyncJob.started_at", cascade="all, delete-orphan"
    )


class SyncJob(Base):
    """One sync of a data source: when, what it changed, and what failed (a failed file
    does not stop the job; its error is kept here and on the file)."""

    __tablename__ = "sync_jobs"
    __table_args__ = (
        CheckConstraint(_in("status", SYNC_STATUSES), name="status"),
        Index("ix_sync_jobs_source_started", "source_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("data_sources.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(16), default="cli")  # cli, schedule, admin
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # The process running it (host, pid, start time) and its last sign of life: a job
    # whose claimant died is marked failed by the next sync, which repairs what it left.
    claimant: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON, default=list)

    source: Mapped[DataSource] = relationship(back_populates="jobs")


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("file_id", "ordinal", name="uq_chunks_file_ordinal"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    # Where in the file the chunk is, beyond its page: heading path, slide title, row range.
    location: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))  # ISO 639-1, when detected

    file: Mapped[File] = relationship(back_populates="chunks")


# --- Records ----------------------------------------------------------------------------


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str | None] = mapped_column(String(50))
    resource_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueryLog(Base):
    __tablename__ = "query_log"
    __table_args__ = (Index("ix_query_log_created", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    question: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[int] = mapped_column(Integer)
    result_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SearchIndexState(Base):
    """Which embedding model built the vectors in the search indexes (one row).

    Vectors of two models are meaningless side by side: the app refuses to start on a
    different model or dimension until `copilot reindex --all` rebuilds the indexes.
    """

    __tablename__ = "search_index_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    embedding_model: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
