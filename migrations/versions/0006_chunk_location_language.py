"""chunk location and language: chunks.location (heading path, slide title, row range) for
citations, chunks.language (ISO 639-1) for language-aware keyword analysis

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Both nullable: chunks ingested before this have neither until `copilot reindex --all`.
    with op.batch_alter_table("chunks") as batch_op:
        batch_op.add_column(sa.Column("location", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("location")
