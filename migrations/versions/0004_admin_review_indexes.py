"""indexes for admin review: activity order, usage by date, errors, full-text search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FULL_TEXT = "to_tsvector('english'::regconfig, content)"


def upgrade() -> None:
    op.create_index("ix_chats_updated", "chats", ["updated_at"])
    op.create_index("ix_chats_created", "chats", ["created_at"])
    op.create_index("ix_messages_created", "messages", ["created_at"])
    op.create_index(
        "ix_messages_chat_error",
        "messages",
        ["chat_id"],
        postgresql_where=sa.text("error IS NOT NULL"),
        sqlite_where=sa.text("error IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_messages_content_search",
            "messages",
            [sa.text(FULL_TEXT)],
            postgresql_using="gin",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_messages_content_search", table_name="messages")
    op.drop_index("ix_messages_chat_error", table_name="messages")
    op.drop_index("ix_messages_created", table_name="messages")
    op.drop_index("ix_chats_created", table_name="chats")
    op.drop_index("ix_chats_updated", table_name="chats")
