"""Re-uploading a changed file of the same name in the chat: the chat asks "Replace" or
"Keep both" instead of silently adding a second file (copilot.web.upload_offers), driven
over socket.io as the browser drives it, on the app of tests/web/test_chat.py.
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from copilot.bench.chat_client import ChatSession, Reply
from copilot.db.models import File, FileVersion
from tests.web.test_chat import LiveChat, eventually, live, new_account

__all__ = ["live"]  # the fixture, used by name

VERSIONS_MISSING = importlib.util.find_spec("copilot.knowledge.versions") is None


def _note(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "otter.md"
    path.write_text(f"# Otter survey\n\n{text}\n")
    return path


async def _files_of(live: LiveChat, owner: str) -> list[File]:
    async with live.runtime.sessions() as session:
        rows = await session.scalars(
            select(File).where(File.owner_id == uuid.UUID(owner)).order_by(File.created_at)
        )
        return list(rows.all())


def _offer(reply: Reply) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The question and its two buttons."""
    (asked,) = [m for m in reply.messages if "You already have a file" in str(m.get("output"))]
    buttons = {a["name"]: a for a in reply.actions if a["forId"] == asked["id"]}
    assert {a["label"] for a in buttons.values()} == {"Replace", "Keep both"}
    return asked, buttons["upload_replace"], buttons["upload_keep_both"]


async def _first_version(live: LiveChat, chat: ChatSession, tmp_path: Path) -> None:
    live.answer_with(None)
    await chat.ask("", files=[_note(tmp_path / "v1", "Otters were counted on the north bank.")])
    await chat.until_shown("indexed otter.md")


async def test_a_changed_upload_of_the_same_name_asks_and_keep_both_adds_a_second_file(
    live: LiveChat, tmp_path: Path
) -> None:
    olga = await new_account(live, "olga")
    owner = olga.principal.user_id
    async with ChatSession(live.url, olga.credentials) as chat:
        await _first_version(live, chat, tmp_path)
        # The same bytes again: a duplicate, said as such, no question.
        same = await chat.ask(
            "", files=[_note(tmp_path / "v1", "Otters were counted on the north bank.")]
        )
        assert "already in your knowledge" in same.text and not same.actions
        changed = _note(tmp_path / "v2", "Otters were counted on the south bank.")
        reply = await chat.ask("", files=[changed])
        asked, _, keep_both = _offer(reply)
        assert "otter.md (version 1)" in asked["output"]
        assert len(await _files_of(live, owner)) == 1  # nothing added before the choice
        kept = await chat.act(keep_both)
        assert "otter.md: queued" in kept.text

        async def two_ready() -> list[File] | None:
            files = await _files_of(live, owner)
            return files if [f.status for f in files] == ["ready", "ready"] else None

        first, second = await eventually(two_ready, timeout=60)
        assert first.original_name == second.original_name == "otter.md"
        assert first.sha256 != second.sha256
        # The choice is made once: the button a second time changes nothing.
        again = await chat.act(keep_both)
        assert "no longer open" in again.text
    assert len(await _files_of(live, owner)) == 2


@pytest.mark.skipif(
    VERSIONS_MISSING,
    reason="copilot.knowledge.versions (index_version) comes with branch i13-sync: not merged",
)
async def test_replace_makes_the_upload_the_files_next_version(
    live: LiveChat, tmp_path: Path
) -> None:
    pia = await new_account(live, "pia")
    owner = pia.principal.user_id
    async with ChatSession(live.url, pia.credentials) as chat:
        await _first_version(live, chat, tmp_path)
        (before,) = await _files_of(live, owner)
        reply = await chat.ask(
            "", files=[_note(tmp_path / "v2", "Otters were counted on the south bank.")]
        )
        _, replace, _ = _offer(reply)
        replaced = await chat.act(replace)
        assert "replaced otter.md: version 2" in replaced.text
        answer = await chat.ask("On which bank were the otters counted?")
    (after,) = await _files_of(live, owner)
    assert after.id == before.id and after.version == 2 and after.sha256 != before.sha256
    async with live.runtime.sessions() as session:
        versions = (
            await session.scalars(
                select(FileVersion.version).where(FileVersion.file_id == after.id)
            )
        ).all()
    assert sorted(versions) == [1, 2]
    assert "south bank" in answer.text and "north bank" not in answer.text
