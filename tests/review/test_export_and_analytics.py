"""Export (CSV and JSONL, one row per message), usage figures, users and files management."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import date

import pytest
from sqlalchemy import select

from copilot.db.models import AuditLog, File, User
from copilot.review import audit, export, files, people
from copilot.review.analytics import usage
from copilot.review.clearance import Clearance
from copilot.review.conversations import ConversationFilter
from copilot.review.reach import Reach
from tests.review.conftest import Reviewed
from tests.review.dataset import CITED_FILES


def _reach(reviewed: Reviewed, who: str) -> Reach:
    reach = Reach.of(getattr(reviewed.data, who))
    assert reach is not None
    return reach


def _clearance(reviewed: Reviewed, who: str, personal_files: bool = False) -> Clearance:
    return Clearance(getattr(reviewed.data, who), _reach(reviewed, who), personal_files)


async def _export(reviewed: Reviewed, who: str, form: str, **criteria: object) -> str:
    async with reviewed.sessions() as session:
        chunks = [
            chunk
            async for chunk in export.export_text(
                session,
                _clearance(reviewed, who),
                ConversationFilter(**criteria),
                form,  # type: ignore[arg-type]
            )
        ]
    return "".join(chunks)


async def test_csv_export_has_one_row_per_message_with_sources_and_feedback(
    reviewed: Reviewed,
) -> None:
    data = reviewed.data
    rows = list(csv.DictReader(io.StringIO(await _export(reviewed, "super_admin", "csv"))))
    assert tuple(rows[0].keys()) == export.COLUMNS
    assert len(rows) == 13  # 6 questions, 6 answers and a notice in 5 chats
    assert {row["conversation_id"] for row in rows} == {str(c) for c in data.all_chats}
    travel = [row for row in rows if row["conversation_id"] == str(data.travel)]
    assert [row["role"] for row in travel] == ["user", "assistant", "user", "assistant"]
    answer = travel[1]
    assert answer["user"] == "alice@example.com" and answer["department"] == "ENG"
    assert answer["content"] == "Hotels are reimbursed up to 180 euros per night [1]."
    assert answer["feedback"] == "down" and answer["feedback_comment"] == "It is 200 euros in Paris"
    cited = json.loads(answer["sources"])
    assert [(s["file"], s["page"]) for s in cited] == [("policy.pdf", 3)]  # uncited faq.md left out
    assert answer["latency_ms"] == "300" and answer["model"] == "extractive"
    assert answer["created_at"] == "2026-11-02T09:01:05+00:00"
    assert answer["conversation_started"] == "2026-11-02T09:00:00+00:00"
    assert travel[0]["sources"] == ""  # a question has none
    broken = [row for row in rows if row["conversation_id"] == str(data.broken)]
    assert broken[1]["error"] == "model endpoint timed out"


async def test_jsonl_export_follows_the_filter_and_the_reach(reviewed: Reviewed) -> None:
    data = reviewed.data
    lines = (await _export(reviewed, "super_admin", "jsonl", feedback="negative")).splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["conversation_id"] for r in records} == {str(data.travel), str(data.carol_chat)}
    assert len(records) == 6
    assert all(set(r) == set(export.COLUMNS) for r in records)
    fin_only = [
        json.loads(line) for line in (await _export(reviewed, "fin_admin", "jsonl")).splitlines()
    ]
    assert {r["user"] for r in fin_only} == {"carol@example.com"}


async def test_usage_figures(reviewed: Reviewed) -> None:
    async with reviewed.sessions() as session:
        everyone = await usage(
            session, _clearance(reviewed, "super_admin"), date(2026, 11, 1), date(2026, 11, 30)
        )
        eng = await usage(
            session, _clearance(reviewed, "eng_admin"), date(2026, 11, 1), date(2026, 11, 30)
        )
        early = await usage(
            session, _clearance(reviewed, "super_admin"), date(2026, 11, 2), date(2026, 11, 3)
        )
    assert (everyone.questions, everyone.answers, everyone.errors) == (6, 6, 1)
    assert everyone.active_users == 3
    assert (everyone.thumbs_up, everyone.thumbs_down) == (1, 2)
    assert everyone.positive_ratio == pytest.approx(1 / 3)
    # Answer latencies 300, 400, 500, 400(error), 600, 700 -> median 450.
    assert everyone.latency_p50_ms == pytest.approx(450)
    assert everyone.latency_p95_ms is not None and 650 <= everyone.latency_p95_ms <= 700
    # policy.pdf is cited by two answers; each answer counts a file once.
    assert dict(everyone.top_files) == {"policy.pdf": 2, "it-handbook.docx": 1, "budget.xlsx": 1}
    assert everyone.busiest_users[0] == ("alice@example.com", 4)
    assert dict(everyone.busiest_departments) == {"ENG": 5, "FIN": 1}
    assert (
        everyone.unanswered == 1
    )  # bob's answer cites nothing it found (the failed one is an error)
    assert everyone.unanswered_examples[0][2] == "Where can visitors park?"
    assert [d.questions for d in everyone.days] == [2, 1, 1, 1, 1]
    assert (eng.questions, eng.active_users, eng.thumbs_down) == (5, 2, 1)
    assert [d.day for d in early.days] == [date(2026, 11, 2), date(2026, 11, 3)]


async def test_admins_change_roles_only_within_their_reach_and_rights(reviewed: Reviewed) -> None:
    data = reviewed.data
    eng_admin, eng = data.eng_admin, _reach(reviewed, "eng_admin")
    alice, carol = uuid.UUID(data.alice.user_id), uuid.UUID(data.carol.user_id)
    async with reviewed.sessions() as session:
        grantable = await people.assignable_roles(session, eng_admin)
        assert "Super Admin" not in grantable and "Power User" in grantable
        changed = await people.change_role(session, eng, eng_admin, alice, "Power User")
        assert [role.name for role in changed.roles] == ["Power User"]
        with pytest.raises(people.NotAllowed, match="may not grant"):
            await people.change_role(session, eng, eng_admin, alice, "Super Admin")
        with pytest.raises(people.NotAllowed, match="reach"):
            await people.set_active(session, eng, eng_admin, carol, False)
        with pytest.raises(people.NotAllowed, match="your own"):
            await people.set_active(session, eng, eng_admin, uuid.UUID(eng_admin.user_id), False)
        # A Super Admin in ENG holds rights the ENG admin does not: not theirs to change.
        eng_super = uuid.UUID(data.eng_super.user_id)
        with pytest.raises(people.NotAllowed, match="admin.system"):
            await people.change_role(session, eng, eng_admin, eng_super, "Regular User")
        with pytest.raises(people.NotAllowed, match="admin.system"):
            await people.set_active(session, eng, eng_admin, eng_super, False)
        await people.set_active(session, eng, eng_admin, alice, False)
        rows, _ = await people.list_people(session, eng, eng_admin)
    assert {row.email for row in rows} == {
        "eng_admin@example.com",
        "alice@example.com",
        "bob@example.com",
        "reader@example.com",
        "eng_super@example.com",
    }
    assert next(row for row in rows if row.email == "alice@example.com").is_active is False
    changeable = {row.email for row in rows if row.changeable}
    assert changeable == {"alice@example.com", "bob@example.com", "reader@example.com"}


async def test_files_listing_and_who_may_manage_or_read_them(reviewed: Reviewed) -> None:
    data = reviewed.data
    async with reviewed.sessions() as session:
        owner = {
            name: (await session.get(User, uuid.UUID(getattr(data, name).user_id)))
            for name in ("alice", "carol", "super_admin")
        }

        def add(name: str, who: str, scope: str, classification: str = "internal") -> File:
            user = owner[who]
            assert user is not None
            file = File(
                owner_id=user.id,
                original_name=name,
                mime_type="text/plain",
                size_bytes=10,
                sha256=uuid.uuid4().hex * 2,
                scope=scope,
                department_id=user.department_id if scope == "department" else None,
                classification=classification,
                status="ready",
            )
            session.add(file)
            return file

        diary = add("alice-notes.txt", "alice", "personal")
        fin_plan = add("fin-plan.txt", "carol", "department")
        handbook = add("handbook.md", "super_admin", "company")
        secret = add("secret.md", "super_admin", "company", "secret")
        await session.commit()
        seeded = set(CITED_FILES)  # company files the seeded answers cite

        eng = _clearance(reviewed, "eng_admin")
        listed, _ = await files.list_files(session, eng)
        # Readable company files only: not another department's, a secret one or a
        # personal one (the setting is off).
        assert {row.name for row in listed} == {"handbook.md"} | seeded
        assert not any(row.manageable for row in listed)  # company files need datasources
        with_personal = _clearance(reviewed, "eng_admin", personal_files=True)
        listed, _ = await files.list_files(session, with_personal)
        assert {row.name for row in listed} == {"handbook.md", "alice-notes.txt"} | seeded
        boss = _clearance(reviewed, "super_admin")
        everything, _ = await files.list_files(session, boss)
        assert {row.name for row in everything} == {
            "fin-plan.txt",
            "handbook.md",
            "secret.md",
        } | seeded
        assert all(row.manageable for row in everything)
        # The Super Admin manages FIN's file but reads it only as search would (ADM).
        assert not next(row for row in everything if row.name == "fin-plan.txt").readable
        with pytest.raises(people.NotAllowed, match="no such file"):
            await files.readable_file(session, eng, diary.id)
        readable, _ = await files.readable_file(session, with_personal, diary.id)
        assert readable.id == diary.id
        for hidden in (fin_plan, secret):
            with pytest.raises(people.NotAllowed, match="no such file"):
                await files.readable_file(session, with_personal, hidden.id)
        with pytest.raises(people.NotAllowed, match="owner"):
            await files.managed_file(session, eng, diary.id)
        with pytest.raises(people.NotAllowed, match="admin.datasources"):
            await files.managed_file(session, eng, handbook.id)
        with pytest.raises(people.NotAllowed, match="another department"):
            await files.managed_file(session, eng, fin_plan.id)
        fin = _clearance(reviewed, "fin_admin")
        assert (await files.managed_file(session, fin, fin_plan.id)).id == fin_plan.id
        managed = await files.managed_file(session, boss, handbook.id)
        assert managed.id == handbook.id


async def test_audit_entries_are_recorded_and_filtered(reviewed: Reviewed) -> None:
    data = reviewed.data
    async with reviewed.sessions() as session:
        await audit.record(session, data.eng_admin, "admin.export", details={"format": "csv"})
        await audit.record(session, data.fin_admin, "admin.view.conversations")
        everything, _ = await audit.list_entries(session, _reach(reviewed, "super_admin"))
        eng_view, _ = await audit.list_entries(session, _reach(reviewed, "eng_admin"))
        exports, _ = await audit.list_entries(
            session, _reach(reviewed, "super_admin"), action="admin.export"
        )
        stored = (await session.scalars(select(AuditLog))).all()
    assert len(stored) == 2
    assert [e.action for e in everything] == ["admin.view.conversations", "admin.export"]
    assert [e.actor for e in eng_view] == ["eng_admin@example.com"]
    assert [e.details for e in exports] == [{"format": "csv"}]


async def test_an_export_stopped_early_leaves_the_session_usable(
    reviewed: Reviewed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "BATCH_ROWS", 2)  # several batches, one fetched ahead
    async with reviewed.sessions() as session:
        stream = export.export_text(
            session, _clearance(reviewed, "super_admin"), ConversationFilter(), "csv"
        )
        header, first = await anext(stream), await anext(stream)
        assert header.startswith("conversation_id,") and len(first.splitlines()) == 2
        await stream.aclose()  # the client went away with the next batch in flight
        users = (await session.scalars(select(User.email))).all()
    assert "alice@example.com" in users
