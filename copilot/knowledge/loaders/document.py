"""What every loader returns: the text of a document, page by page."""

from __future__ import annotations

from dataclasses import dataclass, field

MIME_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
    "csv": "text/csv",
}


@dataclass(frozen=True)
class Page:
    """Text of one page; ``number`` is 1-based (PDF page, PPTX slide), None for pageless formats.

    ``location`` says where in the document the text is, for citations: a heading path
    ("4.2 Travel > Hotels"), a slide title, a row range. A loader of a pageless format gives
    one Page per section, so that no chunk spans two places.
    """

    number: int | None
    text: str
    location: str | None = None


@dataclass(frozen=True)
class LoadedDocument:
    """A document reduced to text; ``pages`` holds only pages that have text.

    ``total_pages`` keeps the real page/slide count because blank pages are dropped from
    ``pages``, so it cannot be recovered from them.
    """

    kind: str
    mime_type: str
    pages: list[Page]
    total_pages: int | None = field(default=None, repr=False)

    @property
    def page_count(self) -> int | None:
        """Number of PDF pages or slides, None for formats without pages."""
        return self.total_pages

    @property
    def text(self) -> str:
        """All pages joined, for callers that do not care about page boundaries."""
        return "\n\n".join(page.text for page in self.pages)


def document_of(kind: str, pages: list[Page], total_pages: int | None = None) -> LoadedDocument:
    """Build a LoadedDocument with the canonical MIME type for ``kind``."""
    return LoadedDocument(
        kind=kind, mime_type=MIME_TYPES[kind], pages=pages, total_pages=total_pages
    )
