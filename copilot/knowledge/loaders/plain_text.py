"""Plain text and Markdown: decoded with encoding detection and kept as written.

Markdown is not rendered: its ``#`` headings, lists and pipe tables are already the structure
the chunker and the model understand, and rendering would only lose it.
"""

from __future__ import annotations

from copilot.knowledge.loaders.document import LoadedDocument, Page, document_of
from copilot.knowledge.loaders.encoding import decode_text
from copilot.knowledge.loaders.errors import EmptyFile
from copilot.knowledge.loaders.sections import markdown_headings, pages_by_heading


def load_plain_text(data: bytes, filename: str) -> LoadedDocument:
    """A .txt (or unknown text) file as one Page."""
    return document_of("text", [Page(number=None, text=_decoded_text(data, filename))])


def load_markdown(data: bytes, filename: str) -> LoadedDocument:
    """A Markdown file, markup kept, one Page per section (see `sections`)."""
    text = _decoded_text(data, filename)
    return document_of("markdown", pages_by_heading(text, markdown_headings(text)))


def _decoded_text(data: bytes, filename: str) -> str:
    text = decode_text(data, filename)
    if not text.strip():
        raise EmptyFile(filename, "contains only whitespace; there is no text to add.")
    # Strip only surrounding blank lines: inner whitespace can be meaningful (code, tables).
    return text.strip("\n").rstrip()
