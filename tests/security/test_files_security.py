"""Uploaded files as an attack surface: serving originals, hostile names and contents,
parsers that never finish, and errors that must not leak internals (issue 9: 4, 11, 12, 23).

Every test makes its own documents; the parser tests run the real worker process.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import docx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from copilot import users
from copilot.db import migrate
from copilot.db.models import File, Permission, Role
from copilot.db.seed import seed_defaults
from copilot.knowledge import knowledge_base
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.knowledge.ingest import IngestResult, Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.loaders import ParseLimits, TooSlowToRead, isolation, load_document
from copilot.knowledge.loaders.isolation import worker_environment
from copilot.settings import Settings
from copilot.web import runtime as web_runtime
from copilot.web.server import create_app
from tests.conftest import People, open_kb, owned_by, stored_counts
from tests.security._files_support import text_pdf

PASSWORD = "correct horse battery"
SCRIPT_HTML = (
    "<!doctype html><html><body><h1>Quarterly plan</h1>"
    "<p>The offsite is in Porto.</p><script>fetch('/admin/users')</script></body></html>"
)
HOSTILE_NAME = 'plan "final";\r\nSet-Cookie: pwned=1; Müller €.docx'
ERROR_ID = re.compile(r"could not be read \(error id ([0-9a-f]{8,})\)")


# --- Helpers -------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _docx(tmp_path: Path, text: str) -> Path:
    document = docx.Document()
    document.add_paragraph(text)
    path = tmp_path / f"doc-{uuid.uuid4().hex[:8]}.docx"
    document.save(str(path))
    return path


async def _stored(kb: KnowledgeBase, result: IngestResult) -> File:
    async with kb.sessions() as session:
        return await session.get_one(File, uuid.UUID(result.file_id))


@pytest.fixture
async def pg_kb(
    postgres_url: str, tmp_path: Path, embeddings: LocalMiniLM
) -> AsyncIterator[KnowledgeBase]:
    """The knowledge base on PostgreSQL, where column lengths are enforced."""
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    async with open_kb(settings, embeddings) as knowledge:
        yield knowledge


async def _kb_with_settings(kb: KnowledgeBase, **changes: object) -> KnowledgeBase:
    """The same knowledge base with other settings (Settings is frozen)."""
    kb.settings = kb.settings.model_copy(update=changes)
    return kb


# --- /files/{id} over HTTP (finding 4) -----------------------------------------------------


@dataclass
class Served:
    client: TestClient
    cookies: dict[str, dict[str, str]]
    files: dict[str, uuid.UUID]

    def get(self, who: str, file: str) -> Any:  # the test client's httpx Response
        self.client.cookies.clear()
        self.client.cookies.update(self.cookies[who])
        return self.client.get(f"/files/{self.files[file]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embeddings: LocalMiniLM) -> Iterator[Served]:
    """The app as served, with company files of every kind and people of every role."""
    folder = tmp_path_factory.mktemp("served")
    settings = Settings(data_dir=folder / "data")
    migrate.upgrade(settings)
    sources: dict[str, tuple[str, bytes | Path]] = {
        "html": ("plan.html", SCRIPT_HTML.encode()),
        "pdf": ("handbook.pdf", text_pdf(["The guest wifi rotates every Monday."])),
        "docx": ("minutes.docx", _docx(folder, "The board approved the Porto offsite.")),
        "hostile": (HOSTILE_NAME, _docx(folder, "Hostile names are only names.")),
        "fake_pdf": ("notes.pdf", b"Plain text notes that only claim to be a PDF.\n"),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knowledge_base, "create_embeddings", lambda _: embeddings)
        with TestClient(create_app(settings)) as client:

            async def setup() -> dict[str, uuid.UUID]:
                runtime = web_runtime.current()
                async with runtime.sessions() as session:
                    await seed_defaults(session)
                    chat_only = await session.scalar(
                        select(Permission).where(Permission.name == "chat.use")
                    )
                    session.add(
                        Role(
                            name="Chat Only",
                            description="may chat, may not open documents",
                            is_system_role=False,
                            max_classification="internal",
                            permissions=[chat_only],
                        )
                    )
                    await session.commit()
                    made = {}
                    for who, role in (
                        ("owner", "Super Admin"),
                        ("regular", "Regular User"),
                        ("reader", "Read Only"),
                        ("chatter", "Chat Only"),
                    ):
                        user = await users.create_user(
                            session,
                            f"{who}@example.com",
                            display_name=who,
                            password=PASSWORD,
                            role=role,
                            department="ENG",
                        )
                        made[who] = user.id
                ids = {}
                for key, (name, content) in sources.items():
                    path = content if isinstance(content, Path) else _write(folder, key, content)
                    result = await ingest_file(
                        runtime.kb, path, Ownership(made["owner"], scope="company"), filename=name
                    )
                    assert result.outcome == "indexed", result.summary
                    ids[key] = uuid.UUID(result.file_id)
                return ids

            files = client.portal.call(setup)  # type: ignore[union-attr]
            cookies = {}
            for who in ("regular", "reader", "chatter"):
                client.cookies.clear()
                response = client.post(
                    "/chat/login", data={"username": f"{who}@example.com", "password": PASSWORD}
                )
                assert response.status_code == 200, response.text
                cookies[who] = dict(client.cookies)
            yield Served(client, cookies, files)


def test_uploaded_html_with_script_is_a_sandboxed_download(served: Served) -> None:
    response = served.get("regular", "html")
    assert response.status_code == 200
    headers = response.headers
    assert headers["content-disposition"].startswith("attachment;")
    assert not headers["content-type"].startswith("text/html")
    assert headers["x-content-type-options"] == "nosniff"
    policy = headers["content-security-policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy
    assert b"<script>" in response.content  # the bytes, untouched


def test_a_pdf_opens_inline_for_the_viewer_without_a_sandbox(served: Served) -> None:
    response = served.get("regular", "pdf")
    assert response.status_code == 200
    headers = response.headers
    assert headers["content-type"] == "application/pdf"
    assert headers["content-disposition"].startswith("inline;")
    assert headers["x-content-type-options"] == "nosniff"
    # Chromium refuses to start its PDF viewer in a sandboxed document ("Print" opens the
    # file in a tab); the chat's pdf.js fetches the bytes and ignores the policy.
    policy = headers["content-security-policy"]
    assert "sandbox" not in policy and "default-src 'none'" in policy
    assert response.content.startswith(b"%PDF-")


def test_a_text_file_named_pdf_is_not_served_as_a_pdf(served: Served) -> None:
    response = served.get("regular", "fake_pdf")
    headers = response.headers
    assert headers["content-type"] != "application/pdf"
    assert headers["content-disposition"].startswith("attachment;")


def test_a_hostile_file_name_gives_a_safe_content_disposition(served: Served) -> None:
    response = served.get("regular", "hostile")
    assert response.status_code == 200
    assert "pwned" not in response.headers.get("set-cookie", "")
    disposition = response.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    fallback = re.fullmatch(
        r'attachment; filename="([\x20-\x7e]*)"; filename\*=UTF-8\'\'([!-~]+)', disposition
    )
    assert fallback is not None, disposition
    assert '"' not in fallback.group(1) and "\\" not in fallback.group(1)
    assert fallback.group(1).endswith(".docx")
    assert unquote(fallback.group(2)) == 'plan "final"; Set-Cookie: pwned=1; Müller €.docx'


def test_read_only_may_view_a_pdf_but_not_download_a_docx(served: Served) -> None:
    assert served.get("reader", "pdf").status_code == 200
    refused = served.get("reader", "docx")
    assert refused.status_code == 403
    assert "documents.download" in refused.json()["detail"]
    assert served.get("regular", "docx").status_code == 200


def test_opening_any_original_needs_documents_read(served: Served) -> None:
    for file in ("pdf", "docx"):
        refused = served.get("chatter", file)
        assert refused.status_code == 403
        assert "documents.read" in refused.json()["detail"]


# --- Error messages (finding 11) -----------------------------------------------------------


async def test_an_unexpected_failure_shows_an_error_id_and_logs_the_detail(
    kb: KnowledgeBase,
    people: People,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_split(pages: object) -> list[object]:
        raise KeyError("/srv/copilot/internal/state.db")

    monkeypatch.setattr(kb.chunker, "split", broken_split)
    path = _write(tmp_path, "plan.md", "# Plan\n\nThe offsite is in Porto.\n")
    with caplog.at_level(logging.ERROR):
        result = await ingest_file(kb, path, owned_by(people.alice))
    assert result.outcome == "failed" and result.error is not None
    assert "KeyError" not in result.error and "/srv/copilot" not in result.error
    found = ERROR_ID.search(result.error)
    assert found is not None, result.error
    assert result.error.startswith('"plan.md" could not be read (error id ')
    assert (await _stored(kb, result)).error == result.error
    logged = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "/srv/copilot/internal/state.db" in caplog.text


async def test_an_index_failure_does_not_show_the_engines_message(
    kb: KnowledgeBase, people: People, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Refusing:
        name = "vector"

        def __init__(self, inner: object) -> None:
            self.inner = inner

        async def add(self, chunks: object) -> None:
            raise ConnectionError("http://weaviate.internal:8080 refused: token=abc123")

        def __getattr__(self, attribute: str) -> object:
            return getattr(self.inner, attribute)

    kb.indexes.vector = Refusing(kb.indexes.vector)  # type: ignore[assignment]
    path = _write(tmp_path, "notes.md", "# Notes\n\nThe quarterly offsite is in Lisbon.\n")
    with caplog.at_level(logging.ERROR):
        result = await ingest_file(kb, path, owned_by(people.alice))
    assert result.outcome == "failed" and result.error is not None
    assert "weaviate.internal" not in result.error and "abc123" not in result.error
    assert "vector index" in result.error and ERROR_ID.search(result.error) is None
    found = re.search(r"error id ([0-9a-f]{8,})", result.error)
    assert found is not None and found.group(1) in caplog.text
    assert "weaviate.internal" in caplog.text
    assert await stored_counts(kb, result.file_id) == (0, 0, 0)


# --- Parser limits (finding 12) ------------------------------------------------------------


async def test_a_parser_that_takes_too_long_is_killed_and_the_file_fails(
    kb: KnowledgeBase, people: People, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # ~8 MB of text operators on one page: pypdf needs ~10 s; the limit is 1 s.
    slow = _write(tmp_path, "slow.pdf", text_pdf(["Slow text on a long page."], repeat=200_000))
    await _kb_with_settings(kb, parse_timeout_seconds=1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="copilot.knowledge.loaders.isolation"):
        result = await ingest_file(kb, slow, owned_by(people.alice))
    elapsed = time.monotonic() - started
    assert result.outcome == "failed"
    assert result.error == (
        '"slow.pdf" took longer than 1 s to read; it may be damaged or unusually complex. '
        "Split it into smaller files or export it again, and upload those."
    )
    assert elapsed < 6, f"the parser was not stopped at its limit ({elapsed:.1f} s)"
    file = await _stored(kb, result)
    assert file.status == "failed" and file.error == result.error
    assert await stored_counts(kb, result.file_id) == (0, 0, 0)
    # The worker was killed, not left running: its process is gone.
    killed = [r for r in caplog.records if getattr(r, "worker_pid", None)]
    assert killed, caplog.text
    pid = killed[0].worker_pid  # type: ignore[attr-defined]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_parser_that_needs_too_much_memory_fails_the_file(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    # 45 MB of short CSV cells: ~1.5 M rows of ten small strings need about 1 GB as lists.
    big = _write(tmp_path, "big.csv", b"ab;cd;ef;gh;ij;kl;mn;op;qr;st\n" * 1_500_000)
    await _kb_with_settings(kb, parse_memory_mb=400)
    result = await ingest_file(kb, big, owned_by(people.alice))
    assert result.outcome == "failed"
    assert result.error == (
        '"big.csv" needs more than 400 MB of memory to read; split it into smaller files '
        "and upload those."
    )
    assert (await _stored(kb, result)).status == "failed"
    assert await stored_counts(kb, result.file_id) == (0, 0, 0)


def test_parsers_wait_for_a_free_slot_and_waiting_is_not_reading_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation, "_PARSER_SLOTS", threading.BoundedSemaphore(1))
    slow = _write(tmp_path, "slow.pdf", text_pdf(["Slow text on a long page."], repeat=200_000))
    limits = ParseLimits(timeout_seconds=1, memory_mb=2048)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        readers = [
            pool.submit(isolation.load_document_isolated, slow, limits=limits) for _ in range(2)
        ]
        for reader in readers:
            with pytest.raises(TooSlowToRead):
                reader.result()
    # One after the other, each with its own full second.
    assert time.monotonic() - started >= 2


def test_the_parser_worker_gets_none_of_the_apps_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COPILOT_JWT_SECRET", "s3cret-signing-key")
    monkeypatch.setenv("COPILOT_DATABASE_URL", "postgresql+psycopg://copilot:pw@db/copilot")
    environment = worker_environment()
    assert not [name for name in environment if name.startswith("COPILOT_")]
    assert "s3cret-signing-key" not in str(environment)


async def test_documents_within_the_limits_are_read_in_the_worker(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    pdf = _write(tmp_path, "wifi.pdf", text_pdf(["The guest wifi rotates every Monday."]))
    result = await ingest_file(kb, pdf, owned_by(people.alice))
    assert result.outcome == "indexed" and result.pages == 1, result.error
    damaged = _write(tmp_path, "half.pdf", text_pdf(["Cut in half."])[:200])
    broken = await ingest_file(kb, damaged, owned_by(people.alice))
    # The loader's own message, written for users, crosses the process boundary intact.
    assert broken.error is not None and '"half.pdf" is damaged' in broken.error


# --- Bad input gives clear results (finding 23) ---------------------------------------------


async def test_a_600_character_name_is_shortened_keeping_its_extension(
    pg_kb: KnowledgeBase, tmp_path: Path
) -> None:
    async with pg_kb.sessions() as session:
        owner = await users.create_user(
            session, "long@example.com", display_name="Long", password=None, role="Regular User"
        )
    name = "Quarterly report " + "very " * 120 + "long.md"
    assert len(name) > 600
    path = _write(tmp_path, "upload.bin", "# Report\n\nRevenue grew in the third quarter.\n")
    result = await ingest_file(pg_kb, path, Ownership(owner.id), filename=name)
    assert result.outcome == "indexed", result.error
    file = await _stored(pg_kb, result)
    assert file.original_name == result.name
    assert len(file.original_name) <= 200 and file.original_name.endswith(" long.md")
    assert file.original_name.startswith("Quarterly report very ")
    assert Path(file.storage_path).is_file()


async def test_names_with_control_characters_are_stored_on_postgresql(
    pg_kb: KnowledgeBase, tmp_path: Path
) -> None:
    # PostgreSQL refuses NUL in text; line breaks would forge lines in lists and logs.
    async with pg_kb.sessions() as session:
        owner = await users.create_user(
            session, "nul@example.com", display_name="Nul", password=None, role="Regular User"
        )
    path = _write(tmp_path, "upload.bin", "# Notes\n\nThe archive moves to room 4.\n")
    name = "notes\x00\r\nforged line\u202etxt.md"
    result = await ingest_file(pg_kb, path, Ownership(owner.id), filename=name)
    assert result.outcome == "indexed", result.error
    assert (await _stored(pg_kb, result)).original_name == "notes forged linetxt.md"


async def test_a_zero_byte_upload_is_reported_empty(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    result = await ingest_file(kb, _write(tmp_path, "blank.txt", b""), owned_by(people.alice))
    assert result.outcome == "failed"
    assert (
        result.summary
        == 'failed blank.txt: "blank.txt" is empty (0 bytes); there is no text to add.'
    )


def test_a_cp1252_csv_is_decoded_as_cp1252(tmp_path: Path) -> None:
    content = "Name;Stadt;Betrag\r\nJosé;Köln;12 €\r\nMüller;München;7 €\r\n"
    path = _write(tmp_path, "kunden.csv", content.encode("cp1252"))
    document = load_document(path)
    assert document.pages[0].text == (
        "Name: José; Stadt: Köln; Betrag: 12 €\nName: Müller; Stadt: München; Betrag: 7 €"
    )
    short = _write(tmp_path, "short.csv", "Name;Stadt\r\nJosé;Köln\r\n".encode("cp1252"))
    assert load_document(short).pages[0].text == "Name: José; Stadt: Köln"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Příliš žluoučký kůň úpěl ďábelské ódy. Dobrý den, jak se máte? Děkuji.\n", "cp1250"),
        ("Zażółć gęślą jaźń. Dzień dobry, jak się masz? Dziękuję, wszystko dobrze.\n", "cp1250"),
        ("Привет, мир! Как дела? Всё хорошо, спасибо.\n", "cp1251"),
        ("id;name;city\n1;Иван;Москва\n2;Пётр;Санкт-Петербург\n", "cp1251"),
        ("Le café était fermé à cause de la grève ; Noël approche.\n", "cp1252"),
    ],
)
def test_other_legacy_code_pages_still_decode(tmp_path: Path, text: str, encoding: str) -> None:
    path = _write(tmp_path, "notes.txt", text.encode(encoding))
    assert load_document(path).pages[0].text == text.strip()


# --- Hostile names (path separators, markup) -----------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "a/b.md", "C:\\x.md", "..", ".", "/etc/cron.d/x", "nul\x00byte.md"],
)
async def test_names_with_path_parts_are_stored_under_the_storage_dir_only(
    kb: KnowledgeBase, people: People, tmp_path: Path, name: str
) -> None:
    path = _write(tmp_path, "upload.bin", "# Visitors\n\nVisitors park in lot B.\n")
    result = await ingest_file(kb, path, owned_by(people.alice), filename=name)
    assert result.outcome == "indexed", result.error
    file = await _stored(kb, result)
    storage = (kb.settings.data_dir / "files" / result.file_id).resolve()
    stored = Path(file.storage_path).resolve()
    assert stored.parent == storage and stored.is_file()
    assert stored.read_bytes() == path.read_bytes()
    assert "\x00" not in file.original_name


async def test_a_name_with_markup_is_stored_as_text(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    # Escaping is the renderers' job (chat, admin pages); the name itself is kept as given.
    name = "<img src=x onerror=alert(1)><script>alert(2)</script>.md"
    path = _write(tmp_path, "upload.bin", "# Visitors\n\nVisitors park in lot B.\n")
    result = await ingest_file(kb, path, owned_by(people.alice), filename=name)
    assert result.outcome == "indexed" and result.name == name
    assert (await _stored(kb, result)).original_name == name
