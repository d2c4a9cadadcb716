"""Re-uploading a changed file: "Replace" (a new version of the file one has) or "Keep both".

An upload whose name is that of one of the user's own uploaded files, with other bytes,
is not added silently as a second file: the chat asks. The upload waits under the data
dir (the offer, in the chat's session, names it) until a button is clicked. "Replace"
makes it the file's next version (`copilot.knowledge.versions.index_version`: the old
version answers until the new one does); "Keep both" adds it as a file of its own.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import chainlit as cl
from sqlalchemy import select

from copilot.db.models import File
from copilot.knowledge.ingest import display_name, file_sha256
from copilot.web.content_security import neutralise_images
from copilot.web.runtime import current

REPLACE = "upload_replace"
KEEP_BOTH = "upload_keep_both"
#: This chat's open offers (user session), by token: a `PendingUpload` each.
OFFERS = "upload_offers"
WAITING_FOLDER = "uploads-waiting"


@dataclass(frozen=True)
class PendingUpload:
    path: Path  # the upload's bytes, in a folder of its own
    name: str
    file_id: uuid.UUID  # the file of the same name it may replace
    sha256: str
    size_bytes: int

    def discard(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


async def same_name_file(owner_id: uuid.UUID, name: str, path: Path) -> PendingUpload | None:
    """The offer to make when the owner has a ready upload called `name` with other bytes
    (and no upload with these bytes: that is a duplicate, said as such); else None."""
    sha256 = await asyncio.to_thread(file_sha256, path)
    name = display_name(name)  # as the file's name is stored
    async with current().sessions() as session:
        uploads = (
            await session.scalars(
                select(File).where(
                    File.owner_id == owner_id,
                    File.source_id.is_(None),
                    ((File.original_name == name) & (File.scope == "personal"))
                    | (File.sha256 == sha256),
                )
            )
        ).all()
    if any(file.sha256 == sha256 for file in uploads):
        return None
    named = [file for file in uploads if file.status == "ready" and file.original_name == name]
    if not named:
        return None
    newest = max(named, key=lambda file: file.updated_at)
    return PendingUpload(path, name, newest.id, sha256, path.stat().st_size)


async def offer(pending: PendingUpload, version: int) -> None:
    """Keep the upload aside and ask, with the two buttons, what to do with it."""
    folder = current().settings.ensure_data_dir() / WAITING_FOLDER / uuid.uuid4().hex
    folder.mkdir(parents=True)
    kept = Path(shutil.move(pending.path, folder / "upload"))
    token = folder.name
    offers: dict[str, PendingUpload] = cl.user_session.get(OFFERS) or {}
    offers[token] = PendingUpload(
        kept, pending.name, pending.file_id, pending.sha256, pending.size_bytes
    )
    cl.user_session.set(OFFERS, offers)
    question = cl.Message(
        content=neutralise_images(
            f"You already have a file called {pending.name} (version {version}). Replace it "
            "with this upload as its next version, or keep both as separate files?"
        ),
        actions=[
            cl.Action(
                name=REPLACE,
                payload={"offer": token},
                label="Replace",
                tooltip=f"Make this upload the next version of {pending.name}",
            ),
            cl.Action(
                name=KEEP_BOTH,
                payload={"offer": token},
                label="Keep both",
                tooltip="Add this upload as a second file",
            ),
        ],
    )
    question.parent_id = None  # a notice in the conversation, as the upload's others are
    await question.send()


def take(action: cl.Action) -> PendingUpload | None:
    """The offer a button answers, now closed (a second click finds none)."""
    offers: dict[str, PendingUpload] = cl.user_session.get(OFFERS) or {}
    pending = offers.pop(str(action.payload.get("offer", "")), None)
    cl.user_session.set(OFFERS, offers)
    return pending


def discard_all() -> None:
    """The chat ended with offers unanswered: their uploads are not kept."""
    offers: dict[str, PendingUpload] = cl.user_session.get(OFFERS) or {}
    for pending in offers.values():
        pending.discard()
    cl.user_session.set(OFFERS, {})


async def replace(pending: PendingUpload, owner_id: uuid.UUID) -> str:
    """Make the upload the next version of its file; what to tell the user."""
    async with current().sessions() as session:
        file = await session.get(File, pending.file_id)
    if file is None or file.owner_id != owner_id:
        return f"{pending.name} is no longer among your files; upload it again to add it."
    if file.status != "ready":
        return f"{pending.name} is being changed right now; upload it again in a moment."
    # Versions come with the data sources' sync (copilot.knowledge.versions).
    from copilot.knowledge.versions import Content, index_version

    done = await index_version(
        current().kb, file.id, Content(pending.path, pending.sha256, pending.size_bytes)
    )
    chunks = f"{done.chunk_count} chunk" + ("" if done.chunk_count == 1 else "s")
    return (
        f"replaced {pending.name}: version {done.version}, {chunks}. "
        "Answers now use this version only."
    )
