"""Alembic environment for SQLite and PostgreSQL.

Migrations run over a blocking connection (psycopg serves both modes; SQLite uses the
standard driver), so they can be called from the CLI, the app's start-up or a test alike.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from copilot.db.migrate import include_object_on, sync_url
from copilot.db.models import Base

config = context.config
url = sync_url(config.get_main_option("sqlalchemy.url") or "")


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place: batch mode rebuilds the table instead.
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
        include_object=include_object_on("sqlite" if url.startswith("sqlite") else "postgresql"),
        **kwargs,
    )


if context.is_offline_mode():
    _configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
