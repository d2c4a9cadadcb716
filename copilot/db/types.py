"""Column types that behave the same on SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

#: JSON everywhere, stored as JSONB on PostgreSQL so it can be indexed and queried.
PortableJSON = JSON().with_variant(JSONB(), "postgresql")


class json_array_holds(FunctionElement[bool]):  # noqa: N801 (used like an SQL function)
    """`json_array_holds(column, text)`: the JSON array in `column` has `text` as an
    element (a file's tags hold a tag), the same on SQLite and PostgreSQL."""

    type = Boolean()
    inherit_cache = True
    name = "json_array_holds"


@compiles(json_array_holds)
def _holds_on_sqlite(element: json_array_holds, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})"


@compiles(json_array_holds, "postgresql")
def _holds_on_postgresql(element: json_array_holds, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} @> jsonb_build_array(CAST({value} AS TEXT)))"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp; SQLite forgets the zone, so we store and read UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
