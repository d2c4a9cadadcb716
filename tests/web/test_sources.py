"""The elements a cited source becomes: a chip and a marker link, never a side element."""

from __future__ import annotations

import uuid
from typing import Any

from copilot.web.sources import (
    CHIP,
    cited_source_elements,
    pdf_url,
    shown_answer,
    source_element_dicts,
)

MESSAGE = str(uuid.uuid4())
CHAT = str(uuid.uuid4())
FILE_ID = str(uuid.uuid4())


def _source(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "number": number,
        "cited": True,
        "file_id": FILE_ID,
        "file_name": "Q3-Report.PDF",
        "page": 7,
        "location": None,
        "place": "p. 7",
        "snippet": "Revenue grew by 12 percent.",
        **fields,
    }


def test_a_source_is_a_chip_and_a_marker_link_of_its_answer() -> None:
    chip, link = cited_source_elements(
        _source(2), message_id=MESSAGE, chat_id=CHAT, pdf_url=f"/files/{FILE_ID}"
    )
    assert (chip.type, chip.name, chip.display) == ("custom", CHIP, "inline")
    assert (link.type, link.name, link.display) == ("text", "[2]", "page")
    assert chip.for_id == link.for_id == MESSAGE and chip.thread_id == link.thread_id == CHAT
    props = chip.props  # type: ignore[attr-defined]
    # The file's own case and the place: the chip reads "[2] Q3-Report.PDF, p. 7".
    assert props["label"] == "[2] Q3-Report.PDF, p. 7"
    assert (props["marker"], props["file"], props["place"]) == ("[2]", "Q3-Report.PDF", "p. 7")
    assert props["snippet"] == "Revenue grew by 12 percent."
    assert (props["pdf"], props["page"]) == (f"/files/{FILE_ID}", 7)
    # A url of its own: Chainlit keeps no copy of the props in the session folder.
    assert chip.url and link.url and "Revenue%20grew" in link.url


def test_no_source_element_is_a_side_element() -> None:
    """Chainlit opens its side panel by itself for side elements (Chainlit#2979)."""
    elements = [
        e
        for n in (1, 2, 3)
        for e in cited_source_elements(_source(n), message_id=MESSAGE, chat_id=CHAT)
    ]
    assert {e.display for e in elements} == {"inline", "page"}


def test_names_and_ids_are_unique_per_answer_and_stable() -> None:
    sources = [_source(1), _source(2, file_name="handbook.docx", page=None, place="4 Travel")]
    first = [e for s in sources for e in cited_source_elements(s, message_id=MESSAGE, chat_id=CHAT)]
    markers = [e.name for e in first if e.type == "text"]
    assert markers == ["[1]", "[2]"]  # each "[n]" of the answer links to one source
    ids = [e.id for e in first]
    assert len(set(ids)) == len(ids)
    # The same answer rebuilt (a resumed chat) has the same ids; another answer has others.
    again = [e for s in sources for e in cited_source_elements(s, message_id=MESSAGE, chat_id=CHAT)]
    assert [e.id for e in again] == ids
    other = cited_source_elements(sources[0], message_id=str(uuid.uuid4()), chat_id=CHAT)
    assert not {e.id for e in other} & set(ids)


def test_a_section_or_a_slide_is_shown_and_other_files_have_no_pdf() -> None:
    docx = _source(1, file_name="Handbook.docx", page=None, place="4 Travel > 4.2 Hotels")
    slide = _source(2, file_name="Deck.pptx", page=4, place="slide 4: Roadmap")
    chip, _ = cited_source_elements(docx, message_id=MESSAGE, chat_id=CHAT)
    assert chip.props["label"] == "[1] Handbook.docx, 4 Travel > 4.2 Hotels"  # type: ignore[attr-defined]
    assert chip.props["pdf"] is None and chip.props["page"] is None  # type: ignore[attr-defined]
    chip, _ = cited_source_elements(slide, message_id=MESSAGE, chat_id=CHAT)
    assert chip.props["place"] == "slide 4: Roadmap"  # type: ignore[attr-defined]


def test_an_older_record_gets_its_number_and_images_are_neutralised() -> None:
    old = _source(0, snippet="See ![x](https://evil.example/p.png) here", place=None)
    del old["number"], old["place"]  # stored before numbers and places existed
    chip, link = source_element_dicts(old, message_id=MESSAGE, chat_id=CHAT, number=3)
    assert link["name"] == "[3]" and chip["props"]["label"] == "[3] Q3-Report.PDF, page 7"  # type: ignore[index]
    assert "\\![x]" in chip["props"]["snippet"]  # an image no more  # type: ignore[index]
    assert chip["forId"] == MESSAGE and chip["display"] == "inline"


def test_the_old_sources_footer_is_not_shown() -> None:
    stored = "Hotels: 180 euros [1].\n\n**Sources:** [1] handbook.md, Travel policy"
    assert shown_answer(stored) == "Hotels: 180 euros [1]."
    assert shown_answer("No footer [1].") == "No footer [1]."


def test_only_a_pdf_is_served_to_open_at_its_page() -> None:
    assert pdf_url(_source(1)) == f"/files/{FILE_ID}"  # "Q3-Report.PDF": any case
    assert pdf_url(_source(1, file_name="notes.md")) is None
    assert pdf_url(_source(1, file_id=None)) is None
