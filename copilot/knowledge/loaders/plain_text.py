"""Plain text and Markdown: decoded with encoding detection and kept as written.

Markdown is not rendered: its ``#`` headings, lists and pipe tables are already the structure
the chunker and the model understand, and rendering would only lose it.
"""

from __future__ import annotations

from copilot.knowledge.loaders.document import LoadedDocument, Page, document_of
from copilot.knowledge.loaders.encoding import decode_text
from copilot.knowledge.loaders.errors import EmptyFile


def load_plain_text(data: bytes, filename: str) -> LoadedDocument:
    """A .txt (or unknown text) file as one Page."""
    return document_of("text", [Page(number=None, text=_decoded_text(data, filename))])


def load_markdown(data: bytes, filename: str) -> LoadedDocument:
    """A Markdown file as one Page, markup kept."""
    return document_of("markdown", [Page(number=None, text=_decoded_text(data, filename))])


def _decoded_text(data: bytes, filename: str) -> str:
    text = decode_text(data, filename)
    if not text.strip():
        raise EmptyFile(filename, "contains only whitespace; there is no text to add.")
    # Strip only surrounding blank lines: inner whitespace can be meaningful (code, tables).
    return text.strip("\n").rstrip()
