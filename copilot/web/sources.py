"""How a cited source shows in the chat: a chip under the answer, a link on its marker "[n]",
and, on a click on either, Chainlit's side panel with that source alone (its passage, and a
PDF at its page).

No source is a `display="side"` element: since 2.11, Chainlit opens its side panel by itself
whenever side elements arrive, titled with the last and filled with every side element of
the chat (MessagesContainer; Chainlit/chainlit#2979, the fix #2982 is unreleased). Instead,
each cited source is two elements of its answer, with ids fixed by (answer, number) so a
live answer and its resumed copy are the same elements:

- the chip, a custom element (public/elements/CitedSource.jsx), shown inline: a click opens
  the side panel itself (Chainlit's `sideViewState`) with this source only;
- the marker, a `display="page"` text element named "[n]": Chainlit links every "[n]" of the
  answer to it, and the chip takes the link's clicks so they open the same panel (before the
  chip's code has loaded, Chainlit's own handler would open the element's page instead).

The chip uses names of Chainlit 2.12's frontend (`sideViewState`, `.message-content`,
`a.element-link`, `.side-pdf`): tests/web/test_browser_sources.py checks them in a browser.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import chainlit as cl
from chainlit.element import ElementDict

from copilot.answer.citations import source_label, source_place
from copilot.web.content_security import neutralise_images

#: The custom element's name: Chainlit loads public/elements/<name>.jsx.
CHIP = "CitedSource"
TEXT_MIME = "text/plain"
JSON_MIME = "application/json"
#: A custom element without a url has Chainlit keep its props (the passage) as a file in
#: the session folder, served for as long as the session lives; the chip reads only props.
_NO_FILE = "data:,"
#: How answers stored before the chips named their sources (see `shown_answer`).
SOURCES_FOOTER = "\n\n**Sources:** "


def source_name(source: Mapping[str, Any]) -> str:
    """How a cited source is named: "[2] handbook.pdf, p. 14", "[1] Handbook.docx, 4 Travel"."""
    return f"[{source.get('number')}] {source_label(source)}"


def marker(number: int) -> str:
    return f"[{number}]"


def text_data_url(text: str) -> str:
    """A text element fetches its url; a data URL carries the text itself."""
    return "data:text/plain;charset=utf-8," + quote(text)


def pdf_url(source: Mapping[str, Any]) -> str | None:
    """Where a just-cited PDF is served (copilot.web.files), or None for other files."""
    if str(source.get("file_name") or "").lower().endswith(".pdf") and source.get("file_id"):
        return f"/files/{source['file_id']}"
    return None


def cited_source_elements(
    source: Mapping[str, Any],
    *,
    message_id: str,
    chat_id: str,
    pdf_url: str | None = None,
    number: int | None = None,
) -> list[cl.Element]:
    """The chip and the marker of one cited source of answer `message_id`.

    ``pdf_url``: where the source's PDF is served (it then opens at the source's page);
    ``number``: the citation number, when the record lacks one (older rows).
    """
    number = number or int(source["number"])
    answer = uuid.UUID(message_id)
    snippet = neutralise_images(str(source.get("snippet") or ""))
    page = source.get("page") if isinstance(source.get("page"), int) else None
    named = {**source, "number": number}
    chip_id = str(uuid.uuid5(answer, f"source-{number}"))
    props = {
        "key": chip_id,
        "number": number,
        "marker": marker(number),
        "label": neutralise_images(source_name(named)),
        "file": neutralise_images(str(source.get("file_name") or "Source")),
        "place": neutralise_images(source_place(named) or ""),
        "snippet": snippet,
        "pdf": pdf_url,
        "page": page if pdf_url else None,
    }
    chip = cl.CustomElement(
        id=chip_id,
        thread_id=chat_id,
        for_id=message_id,
        name=CHIP,
        display="inline",
        props=props,
        url=_NO_FILE,
        mime=JSON_MIME,
    )
    link = cl.Text(
        id=str(uuid.uuid5(answer, f"marker-{number}")),
        thread_id=chat_id,
        for_id=message_id,
        name=marker(number),
        display="page",
        url=text_data_url(snippet),
        mime=TEXT_MIME,
    )
    return [chip, link]


def source_element_dicts(
    source: Mapping[str, Any],
    *,
    message_id: str,
    chat_id: str,
    pdf_url: str | None = None,
    number: int | None = None,
) -> list[ElementDict]:
    """`cited_source_elements` as Chainlit's data layer returns them (a resumed chat)."""
    elements = cited_source_elements(
        source, message_id=message_id, chat_id=chat_id, pdf_url=pdf_url, number=number
    )
    return [element.to_dict() for element in elements]


def shown_answer(content: str) -> str:
    """An answer's text without the "Sources:" footer answers were once stored with: the
    chips name the sources now (and the chain's history never had it)."""
    return content.split(SOURCES_FOOTER)[0]
