"""message history: messages.deleted_at and messages.superseded_by keep what an edit replaced;
questions lose the sources the browser gave them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import copilot.db.types

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Both nullable: every existing message is shown and no earlier version of anything.
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", copilot.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("superseded_by", sa.Uuid(), nullable=True))
    # Sources are the answer code's citations; any on a question came from the browser.
    op.execute("UPDATE messages SET sources = '[]' WHERE role = 'user'")


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("superseded_by")
        batch_op.drop_column("deleted_at")
