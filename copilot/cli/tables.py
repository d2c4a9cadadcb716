"""The bench reports' fixed-width tables: a header line, then one line a row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import typer


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    spec: str = ""  # how numbers are written (".3f"); text is written as it is
    align: str = ">"  # "<" for a column of names

    @classmethod
    def left(cls, title: str, width: int) -> Column:
        """A column of names (the caller cuts them to fit)."""
        return cls(title, width, align="<")

    def cell(self, value: object) -> str:
        spec = self.spec if isinstance(value, int | float) and not isinstance(value, bool) else ""
        return f"{format(value, spec):{self.align}{self.width}}"


def echo_table(columns: Sequence[Column], rows: Iterable[Sequence[object]]) -> None:
    typer.echo("".join(f"{c.title:{c.align}{c.width}}" for c in columns))
    for row in rows:
        typer.echo("".join(c.cell(value) for c, value in zip(columns, row, strict=True)))
