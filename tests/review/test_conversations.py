"""The conversations list: each filter, text search, sorting, pages and the reviewer's reach."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from copilot.review.clearance import Clearance
from copilot.review.conversations import ConversationFilter, FilterError, list_conversations
from copilot.review.reach import Reach
from copilot.review.transcripts import load_transcript, negative_feedback
from tests.review.conftest import Reviewed


async def _ids(reviewed: Reviewed, reach: Reach, **criteria: object) -> list[uuid.UUID]:
    async with reviewed.sessions() as session:
        page = await list_conversations(session, reach, ConversationFilter(**criteria))  # type: ignore[arg-type]
    return [row.id for row in page.rows]


def _reach(reviewed: Reviewed, who: str) -> Reach:
    reach = Reach.of(getattr(reviewed.data, who))
    assert reach is not None
    return reach


def _clearance(reviewed: Reviewed, who: str) -> Clearance:
    return Clearance(getattr(reviewed.data, who), _reach(reviewed, who), personal_files=False)


async def test_reach_follows_the_role(reviewed: Reviewed) -> None:
    data = reviewed.data
    assert Reach.of(data.alice) is None  # a regular user may not review
    assert set(await _ids(reviewed, _reach(reviewed, "super_admin"))) == data.all_chats
    assert set(await _ids(reviewed, _reach(reviewed, "eng_admin"))) == data.eng_chats
    assert set(await _ids(reviewed, _reach(reviewed, "fin_admin"))) == {data.carol_chat}


async def test_each_filter_selects_what_it_says(reviewed: Reviewed) -> None:
    data, everyone = reviewed.data, _reach(reviewed, "super_admin")
    assert set(await _ids(reviewed, everyone, user="alice")) == {
        data.travel,
        data.laptop,
        data.broken,
    }
    assert set(await _ids(reviewed, everyone, user="Carol")) == {data.carol_chat}
    assert set(await _ids(reviewed, everyone, department="FIN")) == {data.carol_chat}
    assert set(await _ids(reviewed, everyone, feedback="negative")) == {
        data.travel,
        data.carol_chat,
    }
    assert set(await _ids(reviewed, everyone, feedback="positive")) == {data.laptop}
    assert set(await _ids(reviewed, everyone, feedback="none")) == {data.broken, data.bob_chat}
    assert set(await _ids(reviewed, everyone, has_error=True)) == {data.broken}
    # Days: travel 2 Nov, laptop 3 Nov, broken 4 Nov, bob 5 Nov, carol 6 Nov.
    window = {"start": date(2026, 11, 3), "end": date(2026, 11, 4)}
    assert set(await _ids(reviewed, everyone, **window)) == {data.laptop, data.broken}
    combined = await _ids(reviewed, everyone, user="alice", feedback="negative")
    assert combined == [data.travel]


async def test_text_search_finds_words_in_any_message(reviewed: Reviewed) -> None:
    data, everyone = reviewed.data, _reach(reviewed, "super_admin")
    assert set(await _ids(reviewed, everyone, text="Paris")) == {data.travel}
    assert set(await _ids(reviewed, everyone, text="budget 2027")) == {data.carol_chat}
    assert set(await _ids(reviewed, everyone, text="visitors park")) == {data.bob_chat}
    assert await _ids(reviewed, everyone, text="submarine") == []
    if reviewed.dialect == "postgresql":
        # Full-text search stems: "reimburse" finds "reimbursed", "laptop" finds "laptops".
        assert set(await _ids(reviewed, everyone, text="reimburse")) == {data.travel}
        assert set(await _ids(reviewed, everyone, text="laptop")) == {data.laptop}
    # The reach still applies to a search.
    eng = _reach(reviewed, "eng_admin")
    assert await _ids(reviewed, eng, text="budget") == []


async def test_sorting_and_pages(reviewed: Reviewed) -> None:
    data, everyone = reviewed.data, _reach(reviewed, "super_admin")
    newest_first = [data.carol_chat, data.bob_chat, data.broken, data.laptop, data.travel]
    assert await _ids(reviewed, everyone) == newest_first
    assert await _ids(reviewed, everyone, descending=False, sort="started") == newest_first[::-1]
    async with reviewed.sessions() as session:
        first = await list_conversations(session, everyone, ConversationFilter(), page_size=2)
        third = await list_conversations(session, everyone, ConversationFilter(page=3), page_size=2)
    assert [row.id for row in first.rows] == newest_first[:2] and first.has_next
    assert [row.id for row in third.rows] == newest_first[4:] and not third.has_next


async def test_rows_carry_counts_and_feedback_summary(reviewed: Reviewed) -> None:
    async with reviewed.sessions() as session:
        page = await list_conversations(
            session, _reach(reviewed, "super_admin"), ConversationFilter()
        )
    rows = {row.id: row for row in page.rows}
    travel = rows[reviewed.data.travel]
    assert (travel.messages, travel.thumbs_down, travel.thumbs_up, travel.errors) == (4, 1, 0, 0)
    assert (travel.user_email, travel.department) == ("alice@example.com", "ENG")
    broken = rows[reviewed.data.broken]
    assert (broken.messages, broken.errors) == (2, 1)


def test_bad_filter_values_are_named() -> None:
    with pytest.raises(FilterError, match="feedback"):
        ConversationFilter.from_params({"feedback": "angry"})
    with pytest.raises(FilterError, match="start"):
        ConversationFilter.from_params({"start": "yesterday"})
    with pytest.raises(FilterError, match="starts after it ends"):
        ConversationFilter.from_params({"start": "2026-11-05", "end": "2026-11-01"})
    with pytest.raises(FilterError, match="page"):
        ConversationFilter.from_params({"page": "0"})
    with pytest.raises(FilterError, match="page"):
        ConversationFilter.from_params({"page": "9" * 30})
    parsed = ConversationFilter.from_params(
        {"user": " alice ", "department": "eng", "has_error": "1", "order": "asc"}
    )
    assert (parsed.user, parsed.department, parsed.has_error, parsed.descending) == (
        "alice",
        "ENG",
        True,
        False,
    )
    assert ConversationFilter.from_params(parsed.as_params()) == parsed


async def test_transcript_has_every_message_with_sources_and_feedback(reviewed: Reviewed) -> None:
    data = reviewed.data
    async with reviewed.sessions() as session:
        transcript = await load_transcript(session, _clearance(reviewed, "eng_admin"), data.travel)
        hidden = await load_transcript(session, _clearance(reviewed, "fin_admin"), data.travel)
        failed = await load_transcript(session, _clearance(reviewed, "super_admin"), data.broken)
    assert hidden is None  # another department's chat is not found, not forbidden
    assert transcript is not None
    assert [m.role for m in transcript.messages] == ["user", "assistant", "user", "assistant"]
    first_answer = transcript.messages[1]
    assert [s["file_name"] for s in first_answer.cited_sources] == ["policy.pdf"]
    assert first_answer.cited_sources[0]["page"] == 3
    assert [(f.value, f.comment) for f in first_answer.feedback] == [
        (-1, "It is 200 euros in Paris")
    ]
    assert first_answer.latency_ms == 300 and first_answer.model == "extractive"
    assert failed is not None and failed.messages[1].error == "model endpoint timed out"


async def test_triage_lists_negative_feedback_newest_first_with_the_question(
    reviewed: Reviewed,
) -> None:
    data = reviewed.data
    async with reviewed.sessions() as session:
        items, has_next = await negative_feedback(session, _clearance(reviewed, "super_admin"))
        eng_items, _ = await negative_feedback(session, _clearance(reviewed, "eng_admin"))
    assert [item.chat_id for item in items] == [data.carol_chat, data.travel] and not has_next
    travel = items[1]
    assert travel.question == "How much are hotels reimbursed per night?"
    assert travel.comment == "It is 200 euros in Paris"
    assert [s["file_name"] for s in travel.cited_sources] == ["policy.pdf"]
    assert [item.chat_id for item in eng_items] == [data.travel]
