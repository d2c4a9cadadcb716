"""data sources: folders synced by jobs (data_sources, sync_jobs), file versions
(file_versions, files.version), tags (files.tags), and a file's place in its source
(files.source_id, source_path, source_modified_at); the one-copy-per-owner rule now
holds for uploads only, as a source's folder may hold the same bytes twice

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UPLOADS_ONLY = sa.text("source_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "data_sources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("department_id", sa.Uuid(), nullable=True),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('folder')", name=op.f("ck_data_sources_kind")),
        sa.CheckConstraint(
            "scope IN ('department', 'company')", name=op.f("ck_data_sources_scope")
        ),
        sa.CheckConstraint(
            "classification IN ('public', 'internal', 'confidential', 'secret')",
            name=op.f("ck_data_sources_classification"),
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_data_sources_department_id_departments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_data_sources_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_data_sources_name")),
    )
    op.create_table(
        "sync_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimant", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("errors", JSON, nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'partial', 'failed')",
            name=op.f("ck_sync_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["data_sources.id"],
            name=op.f("fk_sync_jobs_source_id_data_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_jobs")),
    )
    op.create_index("ix_sync_jobs_source_started", "sync_jobs", ["source_id", "started_at"])
    op.create_table(
        "file_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name=op.f("fk_file_versions_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_versions")),
        sa.UniqueConstraint("file_id", "version", name="uq_file_versions_file_version"),
    )
    with op.batch_alter_table("files") as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
        batch_op.add_column(sa.Column("tags", JSON, server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("source_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("source_path", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("source_modified_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_files_source_id_data_sources"),
            "data_sources",
            ["source_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_files_source_id"), ["source_id"])
        batch_op.create_unique_constraint("uq_files_source_path", ["source_id", "source_path"])
        batch_op.drop_constraint("uq_files_owner_sha256", type_="unique")
    op.create_index(
        "uq_files_owner_sha256",
        "files",
        ["owner_id", "sha256"],
        unique=True,
        sqlite_where=UPLOADS_ONLY,
        postgresql_where=UPLOADS_ONLY,
    )
    # Every file indexed so far is its first version.
    op.execute(
        "INSERT INTO file_versions (id, file_id, version, sha256, size_bytes, chunk_count, "
        "created_at) SELECT id, id, 1, sha256, size_bytes, chunk_count, created_at FROM files "
        "WHERE status = 'ready'"
    )


def downgrade() -> None:
    op.drop_index("uq_files_owner_sha256", table_name="files")
    # A source's copies of the same bytes cannot all stay under the upload rule.
    op.execute("DELETE FROM files WHERE source_id IS NOT NULL")
    with op.batch_alter_table("files") as batch_op:
        batch_op.create_unique_constraint("uq_files_owner_sha256", ["owner_id", "sha256"])
        batch_op.drop_constraint("uq_files_source_path", type_="unique")
        batch_op.drop_index(batch_op.f("ix_files_source_id"))
        batch_op.drop_constraint(batch_op.f("fk_files_source_id_data_sources"), type_="foreignkey")
        batch_op.drop_column("source_modified_at")
        batch_op.drop_column("source_path")
        batch_op.drop_column("source_id")
        batch_op.drop_column("tags")
        batch_op.drop_column("version")
    op.drop_table("file_versions")
    op.drop_index("ix_sync_jobs_source_started", table_name="sync_jobs")
    op.drop_table("sync_jobs")
    op.drop_table("data_sources")
