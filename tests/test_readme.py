"""The README documents what the code does: its permission table is generated, not typed."""

from __future__ import annotations

from pathlib import Path

from copilot.db.seed import PERMISSIONS, permission_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_permission_table_is_the_generated_one() -> None:
    assert permission_table() in README.read_text(encoding="utf-8"), (
        "README's permission table is out of date: paste `copilot users roles` into it"
    )


def test_every_seeded_permission_is_in_the_table() -> None:
    table = permission_table()
    for name, _ in PERMISSIONS:
        assert f"`{name}`" in table
