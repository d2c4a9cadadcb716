"""admin review: feedback.chat_id, and indexes for activity order, dates, errors, text search

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
    # feedback.chat_id: filled from the rated message, then required.
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.add_column(sa.Column("chat_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE feedback SET chat_id = "
        "(SELECT messages.chat_id FROM messages WHERE messages.id = feedback.message_id)"
    )
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.alter_column("chat_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_foreign_key(
            "fk_feedback_chat_id_chats", "chats", ["chat_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_feedback_chat_value", ["chat_id", "value"])
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
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.drop_index("ix_feedback_chat_value")
        batch_op.drop_constraint("fk_feedback_chat_id_chats", type_="foreignkey")
        batch_op.drop_column("chat_id")
