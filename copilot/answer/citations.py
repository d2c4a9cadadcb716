"""Citations: which numbered sources an answer cites, numbered 1..n in the order they first
appear, what to store of each source, and how a source's place is named.

The answer is written (by the extractive answerer or a chat model) against the sources in
retrieval order, so its markers are retrieval ranks ("[2] ... [6]"). `CitationNumbering`
rewrites them to 1..n in order of first appearance, also while the answer streams: a marker
is only sent once it is complete, and the same rewriting applied to the whole text gives
the same result, so what the reader saw streaming is what is stored. Numbers that name no
source are dropped from the markers (a citation that points nowhere is a wrong citation).
A marker of several sources becomes one marker per source ("[2, 6]" -> "[2][1]"), so the
chat links each number to its own source.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document

_CITATION = re.compile(r"\[(\d{1,3})(?:\s*,\s*(\d{1,3}))*\]")
_NUMBER = re.compile(r"\d{1,3}")
# The tail of a streamed text that may still become a marker: "[", "[1", "[1, 2".
_UNFINISHED_MARKER = re.compile(r"\[[\d\s,]{0,40}$")

OnToken = Callable[[str], Awaitable[None]]
#: Told (new number, retrieval rank) when a source is first cited, after the text citing it.
OnCite = Callable[[int, int], Awaitable[None]]


async def _no_cite(number: int, rank: int) -> None:
    return None


def cited_numbers(text: str, source_count: int) -> list[int]:
    """Source numbers cited in `text`, in order of first citation; out-of-range ones dropped."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for number in map(int, _NUMBER.findall(match.group(0))):
            if 1 <= number <= source_count and number not in seen:
                seen.append(number)
    return seen


class CitationNumbering:
    """Renumbers an answer's citation markers 1..n in order of first appearance.

    ``order`` lists the original (retrieval) numbers in that order: ``order[0]`` became 1.
    Use `rewrite` on a whole text, or `stream` to rewrite tokens on their way to a reader.
    """

    def __init__(self, source_count: int) -> None:
        self.source_count = source_count
        self.order: list[int] = []

    def rewrite(self, text: str) -> str:
        return _CITATION.sub(self._renumbered, text)

    def stream(self, on_token: OnToken, on_cite: OnCite = _no_cite) -> CitationStream:
        return CitationStream(self, on_token, on_cite)

    def records(self, documents: Sequence[Document]) -> list[dict[str, Any]]:
        """Every source: the cited ones first under their new numbers, then the rest."""
        cited = [
            source_record(number, documents[rank - 1], True, rank)
            for number, rank in enumerate(self.order, 1)
        ]
        uncited = [rank for rank in range(1, len(documents) + 1) if rank not in self.order]
        return cited + [
            source_record(number, documents[rank - 1], False, rank)
            for number, rank in enumerate(uncited, len(cited) + 1)
        ]

    def _renumbered(self, marker: re.Match[str]) -> str:
        numbers: list[int] = []
        for original in map(int, _NUMBER.findall(marker.group(0))):
            if not 1 <= original <= self.source_count:
                continue
            if original not in self.order:
                self.order.append(original)
            new = self.order.index(original) + 1
            if new not in numbers:
                numbers.append(new)
        return "".join(f"[{number}]" for number in numbers)


class CitationStream:
    """Passes tokens on with their markers renumbered, holding back an unfinished marker;
    `on_cite` hears of each source as soon as the text first citing it has been passed on."""

    def __init__(self, numbering: CitationNumbering, on_token: OnToken, on_cite: OnCite) -> None:
        self._numbering = numbering
        self._on_token = on_token
        self._on_cite = on_cite
        self._held = ""

    async def __call__(self, token: str) -> None:
        text = self._held + token
        unfinished = _UNFINISHED_MARKER.search(text)
        cut = unfinished.start() if unfinished else len(text)
        self._held = text[cut:]
        if cut:
            await self._pass_on(text[:cut])

    async def close(self) -> None:
        """Send what is still held (a "[" that never became a marker)."""
        if self._held:
            held, self._held = self._held, ""
            await self._pass_on(held)

    async def _pass_on(self, text: str) -> None:
        known = len(self._numbering.order)
        await self._on_token(self._numbering.rewrite(text))
        for number, rank in enumerate(self._numbering.order[known:], known + 1):
            await self._on_cite(number, rank)


def source_record(
    number: int, document: Document, cited: bool, rank: int | None = None
) -> dict[str, Any]:
    """What a message stores about one source (JSON): enough to show and audit it later.

    ``number`` is the citation number shown to the reader, ``rank`` the source's place in
    the retrieval (the number the answer was written with).
    """
    metadata = document.metadata
    return {
        "number": number,
        "cited": cited,
        "rank": rank if rank is not None else number,
        "chunk_id": metadata.get("chunk_id"),
        "file_id": metadata.get("file_id"),
        "file_name": metadata.get("file_name"),
        "page": metadata.get("page"),
        "location": metadata.get("location"),
        "place": place(metadata.get("kind"), metadata.get("page"), metadata.get("location")),
        "score": metadata.get("fused_score"),
        "snippet": document.page_content[:1000],
    }


def place(kind: str | None, page: int | None, location: str | None) -> str | None:
    """Where in its file a passage is: "p. 3", "slide 4: Title", "4 Travel > 4.2 Hotels"."""
    if kind == "pptx" and page:
        return f"slide {page}: {location}" if location else f"slide {page}"
    if page:
        return f"p. {page}, {location}" if location else f"p. {page}"
    return location or None


def source_place(source: Mapping[str, Any]) -> str | None:
    """A stored source's place.

    Records stored before places existed have no "place" key: they keep the wording they
    were shown with ("page 12"), because Chainlit links a source by finding its name in the
    stored answer text, so a resumed old chat must name its sources the same way.
    """
    if "place" in source:
        return source["place"] or None
    return f"page {source['page']}" if source.get("page") else None


def source_label(source: Mapping[str, Any]) -> str:
    """A source as a reader sees it: "handbook.docx, 4 Travel > 4.2 Hotels", "report.pdf, p. 3"."""
    name = source.get("file_name") or "Source"
    where = source_place(source)
    return f"{name}, {where}" if where else str(name)
