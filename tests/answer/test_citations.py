"""Citations are numbered 1..n in order of first appearance, in the streamed text as in the
stored one, the source records match those numbers, and each names its place."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from copilot.answer.chain import AnswerChain
from copilot.answer.citations import CitationNumbering, cited_numbers, place, source_label
from copilot.answer.extractive import ExtractiveAnswerer
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from tests.conftest import People


def _documents(count: int) -> list[Document]:
    return [
        Document(page_content=f"passage {n}", metadata={"chunk_id": f"c{n}", "file_name": "f.md"})
        for n in range(1, count + 1)
    ]


def test_ranks_2_and_6_become_1_and_2_with_matching_records() -> None:
    numbering = CitationNumbering(6)

    text = numbering.rewrite("Hotels cost 150 euros [6]. Flights are economy [2]. Both [2, 6].")

    assert text == "Hotels cost 150 euros [1]. Flights are economy [2]. Both [2][1]."
    records = numbering.records(_documents(6))
    assert [(r["number"], r["rank"], r["cited"]) for r in records] == [
        (1, 6, True),
        (2, 2, True),
        (3, 1, False),  # uncited sources follow, in retrieval order
        (4, 3, False),
        (5, 4, False),
        (6, 5, False),
    ]
    assert records[0]["snippet"] == "passage 6" and records[1]["chunk_id"] == "c2"


def test_numbers_that_name_no_source_are_dropped() -> None:
    numbering = CitationNumbering(3)
    assert numbering.rewrite("A [3]. B [9]. C [0, 3]. D [1, 7].") == "A [1]. B . C [1]. D [2]."
    assert numbering.rewrite("E [3, 1, 3].") == "E [1][2]."  # one marker per source
    assert numbering.order == [3, 1]


MARKED_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["[1]", "[2]", "[6]", "[2, 6]", "[9]", "[", "]", " [3,", "x", " ", "."]),
        st.text(alphabet="ab [],0123456789", max_size=6),
    ),
    max_size=30,
).map("".join)


@given(MARKED_TEXT, st.lists(st.integers(min_value=1, max_value=8), max_size=40))
async def test_streamed_text_is_the_stored_text_wherever_tokens_split(
    text: str, cuts: list[int]
) -> None:
    sent: list[str] = []

    async def collect(token: str) -> None:
        sent.append(token)

    streamed = CitationNumbering(6)
    stream = streamed.stream(collect)
    position = 0
    for cut in cuts:
        await stream(text[position : position + cut])
        position += cut
    await stream(text[position:])
    await stream.close()

    whole = CitationNumbering(6)
    assert "".join(sent) == whole.rewrite(text) == streamed.rewrite(text)
    assert streamed.order == whole.order


def test_places_name_page_slide_heading_path_and_rows() -> None:
    assert place("pdf", 3, None) == "p. 3"
    assert place("pptx", 4, "Roadmap 2026") == "slide 4: Roadmap 2026"
    assert place("pptx", 2, None) == "slide 2"
    assert place("docx", None, "4 Travel > 4.2 Hotels") == "4 Travel > 4.2 Hotels"
    assert place("csv", None, "rows 2–51") == "rows 2–51"
    assert place("text", None, None) is None
    assert source_label({"file_name": "report.pdf", "place": "p. 3"}) == "report.pdf, p. 3"
    # Stored before places existed: the page shows as it was worded then (Chainlit finds a
    # source's link by its name in the stored answer text).
    assert source_label({"file_name": "old.pdf", "page": 7}) == "old.pdf, page 7"
    assert source_label({"file_name": "new.md", "page": None, "place": None}) == "new.md"
    assert source_label({"file_name": "notes.txt", "page": None}) == "notes.txt"


SECTIONS = "\n\n".join(
    f"## Section {n}\n\nTopic {n}: the office plant number {n} needs watering on day {n}."
    for n in range(1, 9)
)


@pytest.fixture
async def sections(kb: KnowledgeBase, people: People, tmp_path: Path) -> str:
    path = tmp_path / "plants.md"
    path.write_text(f"# Plants\n\n{SECTIONS}\n")
    owner = Ownership(uuid.UUID(people.admin.user_id), scope="company")
    result = await ingest_file(kb, path, owner)
    assert result.outcome == "indexed" and result.chunks == 8
    return result.file_id


async def test_a_model_citing_2_and_6_is_shown_and_stored_as_1_and_2(
    kb: KnowledgeBase, people: People, sections: str
) -> None:
    question = "Which office plant needs watering?"
    retrieved, _ = await kb.search.search(question, people.bob.scope)
    assert len(retrieved) >= 6
    model = GenericFakeChatModel(
        messages=iter([AIMessage("Plant A needs water [6]. Plant B too [2]. Again [6].")])
    )
    chain = AnswerChain(
        kb.search,
        model=model,
        model_name="fake",
        extractive=ExtractiveAnswerer(kb.embeddings),
        locate=kb.locations,
    )
    tokens: list[str] = []

    async def collect(token: str) -> None:
        tokens.append(token)

    result = await chain.answer(question, people.bob.scope, on_token=collect)

    assert result.text == "Plant A needs water [1]. Plant B too [2]. Again [1]."
    assert "".join(tokens) == result.text  # the reader saw the numbers that are stored
    assert result.cited == [1, 2]
    assert [s["number"] for s in result.sources] == list(range(1, len(retrieved) + 1))
    first, second = result.cited_sources
    assert first["chunk_id"] == retrieved[5].metadata["chunk_id"] and first["rank"] == 6
    assert second["chunk_id"] == retrieved[1].metadata["chunk_id"] and second["rank"] == 2
    # The place comes from the chunks table: the section of the passage cited.
    section = retrieved[5].page_content.split("\n")[0].removeprefix("## ")
    assert first["location"] == f"Plants > {section}" == first["place"]
    uncited = [s for s in result.sources if not s["cited"]]
    assert [s["rank"] for s in uncited] == [
        r for r in range(1, len(retrieved) + 1) if r not in (2, 6)
    ]


async def test_extractive_citations_are_numbered_in_order_of_appearance(
    kb: KnowledgeBase, people: People, sections: str
) -> None:
    chain = AnswerChain(
        kb.search,
        model=None,
        model_name="extractive",
        extractive=ExtractiveAnswerer(kb.embeddings),
        locate=kb.locations,
    )
    tokens: list[str] = []

    async def collect(token: str) -> None:
        tokens.append(token)

    result = await chain.answer(
        "When does office plant number 5 need watering, and plant number 3?",
        people.bob.scope,
        on_token=collect,
    )

    assert "".join(tokens) == result.text
    numbering = CitationNumbering(len(result.sources))
    numbering.rewrite(result.text)
    assert numbering.order == result.cited == list(range(1, len(result.cited) + 1))
    assert result.cited
    for source in result.cited_sources:
        assert source["snippet"].split("\n")[0].removeprefix("## ") in source["place"]
        assert source["place"].startswith("Plants > Section ")


@given(MARKED_TEXT, st.lists(st.integers(min_value=1, max_value=8), max_size=40))
async def test_each_source_is_announced_once_right_after_the_text_first_citing_it(
    text: str, cuts: list[int]
) -> None:
    events: list[tuple[str, int | str]] = []

    async def collect(token: str) -> None:
        events.append(("text", token))

    async def cite(number: int, rank: int) -> None:
        events.append(("cite", number))
        assert streamed.order[number - 1] == rank

    streamed = CitationNumbering(6)
    stream = streamed.stream(collect, cite)
    position = 0
    for cut in cuts:
        await stream(text[position : position + cut])
        position += cut
    await stream(text[position:])
    await stream.close()

    cites = [number for kind, number in events if kind == "cite"]
    assert cites == list(range(1, len(streamed.order) + 1))
    for index, (kind, number) in enumerate(events):
        if kind != "cite":
            continue
        texts = [str(t) for k, t in events[:index] if k == "text"]
        assert number in cited_numbers("".join(texts), 6)  # shown with its new number...
        assert number not in cited_numbers("".join(texts[:-1]), 6)  # ...by the last piece
