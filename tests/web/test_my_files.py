"""/my/files over HTTP: a user's own files page, delete after confirmation, and an
attacker's tries (someone else's file, a company file, guessed ids, no or a wrong CSRF
token, another site), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select

from copilot.db.models import Chunk, File
from copilot.web import runtime as web_runtime
from copilot.web.my_files import file_size
from tests.security._admin_support import Admin, admin_on_each_database

__all__ = ["admin_on_each_database"]  # the fixture, used by name


def _file_exists(admin: Admin, file_id: uuid.UUID) -> bool:
    async def read() -> bool:
        async with web_runtime.current().sessions() as session:
            return await session.get(File, file_id) is not None

    return bool(admin.run(read))


def _chunks(admin: Admin, file_id: uuid.UUID) -> int:
    async def read() -> int:
        async with web_runtime.current().sessions() as session:
            return len((await session.scalars(select(Chunk).where(Chunk.file_id == file_id))).all())

    return int(admin.run(read))


def test_the_page_lists_only_the_users_own_personal_files(admin_on_each_database: Admin) -> None:
    admin = admin_on_each_database
    mine = admin.add_file("alice-notes.md", "alice", scope="personal", text="My notes.")
    admin.add_file("bob-secret.md", "bob", scope="personal", text="Bob's.")
    page = admin.as_("alice").get("/my/files")
    assert page.status_code == 200
    assert "alice-notes.md" in page.text and "bob-secret.md" not in page.text
    assert f"/my/files/{mine}/delete" in page.text
    assert "ready" in page.text and ">1<" in page.text  # status and chunks
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY"
    # The admin's company and department files are managed in /admin, never listed here.
    own = admin.as_("super_admin").get("/my/files")
    assert own.status_code == 200 and "handbook.md" not in own.text
    assert "/admin/files" in own.text
    assert "/admin/files" not in admin.as_("alice").get("/my/files").text


def test_delete_asks_first_then_removes_the_file_from_db_and_indexes(
    admin_on_each_database: Admin,
) -> None:
    admin = admin_on_each_database
    client = admin.as_("alice")
    confirm = client.get(f"/my/files/{admin.handbook}/delete")
    assert confirm.status_code == 404  # not hers
    mine = admin.add_file("alice-notes.md", "alice", scope="personal", text="My notes.")
    confirm = client.get(f"/my/files/{mine}/delete")
    assert confirm.status_code == 200 and "Delete alice-notes.md?" in confirm.text
    assert _file_exists(admin, mine), "showing the confirmation deletes nothing"
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', confirm.text)
    assert token and token.group(1) == admin.token("alice")
    done = client.post(
        f"/my/files/{mine}/delete", data={"csrf_token": token.group(1)}, follow_redirects=True
    )
    assert done.status_code == 200
    assert "Deleted alice-notes.md; it is no longer searchable." in done.text
    assert not _file_exists(admin, mine) and _chunks(admin, mine) == 0


def test_a_real_file_leaves_both_indexes(admin_on_each_database: Admin, tmp_path: object) -> None:
    """Through the knowledge base's delete path: the search finds it before, not after."""
    from pathlib import Path

    from copilot.knowledge.ingest import Ownership, ingest_file

    admin = admin_on_each_database
    alice = admin.principal("alice")
    note = Path(str(tmp_path)) / "alice-parking.md"
    note.write_text("# Parking\n\nAlice parks her bicycle in the zebra-striped shed.\n")

    async def add() -> uuid.UUID:
        kb = web_runtime.current().kb
        result = await ingest_file(kb, note, Ownership(uuid.UUID(alice.user_id)))
        return uuid.UUID(result.file_id)

    async def hits() -> int:
        kb = web_runtime.current().kb
        query = "zebra-striped shed"
        found = await kb.indexes.keyword.search(query, alice.scope, 5)
        vector = kb.embeddings.embed_query(query)
        found += await kb.indexes.vector.search(vector, alice.scope, 5)
        return len([hit for hit in found if hit.file_id == str(file_id)])

    file_id = admin.run(add)
    assert admin.run(hits) == 2  # one hit in each index
    response = admin.post("alice", f"/my/files/{file_id}/delete")
    assert response.status_code == 303
    assert admin.run(hits) == 0 and not _file_exists(admin, file_id)


def test_an_attacker_deletes_nothing_that_is_not_theirs(admin_on_each_database: Admin) -> None:
    admin = admin_on_each_database
    bobs = admin.add_file("bob-secret.md", "bob", scope="personal", text="Bob's.")
    own_company = admin.handbook  # the super admin's own company file
    for who, target in (
        ("alice", bobs),  # another user's file
        ("alice", admin.handbook),  # a company file
        ("super_admin", own_company),  # their own, but company knowledge: /admin only
        ("alice", uuid.uuid4()),  # a guessed id
    ):
        response = admin.post(who, f"/my/files/{target}/delete")
        assert response.status_code == 404, (who, target)
        assert "bob-secret.md" not in response.text
        assert admin.as_(who).get(f"/my/files/{target}/delete").status_code == 404
    assert _file_exists(admin, bobs) and _file_exists(admin, admin.handbook)
    assert admin.as_("alice").get("/my/files/not-a-uuid/delete").status_code == 422

    mine = admin.add_file("alice-notes.md", "alice", scope="personal", text="My notes.")
    client = admin.as_("alice")
    no_token = client.post(f"/my/files/{mine}/delete", follow_redirects=False)
    wrong_token = client.post(
        f"/my/files/{mine}/delete",
        data={"csrf_token": admin.token("reader")},  # a token of another sign-in
        follow_redirects=False,
    )
    other_site = client.post(
        f"/my/files/{mine}/delete",
        data={"csrf_token": admin.token("alice")},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert [r.status_code for r in (no_token, wrong_token, other_site)] == [403, 403, 403]
    assert _file_exists(admin, mine)
    signed_out = admin.as_(None).post(f"/my/files/{mine}/delete", follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/chat/login")
    assert admin.as_(None).get("/my/files", follow_redirects=False).status_code == 303
    assert _file_exists(admin, mine)


def test_a_file_being_added_is_not_deleted_under_its_ingestion(
    admin_on_each_database: Admin,
) -> None:
    admin = admin_on_each_database
    mine = admin.add_file("alice-notes.md", "alice", scope="personal", text="My notes.")

    async def processing() -> None:
        async with web_runtime.current().sessions() as session:
            file = await session.get(File, mine)
            assert file is not None
            file.status, file.progress = "processing", {"stage": "embedding", "percent": 40}
            await session.commit()

    admin.run(processing)
    page = admin.as_("alice").get("/my/files")
    assert "processing 40%" in page.text and f"/my/files/{mine}/delete" not in page.text
    done = admin.post("alice", f"/my/files/{mine}/delete")
    assert done.status_code == 303
    assert "still being added" in admin.as_("alice").get(done.headers["location"]).text
    assert _file_exists(admin, mine)


def test_file_sizes_read_as_people_say_them() -> None:
    assert [file_size(n) for n in (1, 812, 14_540, 3_250_000)] == [
        "1 byte",
        "812 bytes",
        "14.2 KB",
        "3.1 MB",
    ]
