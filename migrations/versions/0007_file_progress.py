"""file progress: files.progress holds an ingestion's last reported stage, pages, chunks and
percent, so every chat of the owner (and any process) can show it while it runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL when no ingestion of the file is running.
    with op.batch_alter_table("files") as batch_op:
        batch_op.add_column(
            sa.Column(
                "progress",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("files") as batch_op:
        batch_op.drop_column("progress")
