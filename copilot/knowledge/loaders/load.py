"""Entry point: a file on disk -> LoadedDocument, or an UnreadableFile saying why not."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import cast

from copilot.knowledge.loaders.detection import detect_kind, file_extension
from copilot.knowledge.loaders.document import LoadedDocument
from copilot.knowledge.loaders.errors import EmptyFile, TooLarge, format_size
from copilot.knowledge.loaders.office_zip import inspect_office_zip, is_zip

DEFAULT_MAX_BYTES = 50 * 2**20
HEAD_BYTES = 64 * 1024

# Each parser worker reads one file, so it imports only that format's library: importing
# them all (pypdf, python-docx, python-pptx, BeautifulSoup, markdown-it) took ~0.5 s of
# CPU per file, longer than reading a text file, and on 2 cores that CPU is the embedding's.
_LOADERS: dict[str, tuple[str, str]] = {
    "pdf": ("pdf", "load_pdf"),
    "html": ("webpage", "load_html"),
    "markdown": ("plain_text", "load_markdown"),
    "text": ("plain_text", "load_plain_text"),
    "csv": ("csv_rows", "load_csv"),
    "pptx": ("powerpoint", "load_powerpoint"),
    "docx": ("word", "load_word"),
}


def _loader(kind: str) -> Callable[..., LoadedDocument]:
    module, function = _LOADERS[kind]
    loaded = importlib.import_module(f"copilot.knowledge.loaders.{module}")
    return cast(Callable[..., LoadedDocument], getattr(loaded, function))


def load_document(
    path: Path, *, filename: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> LoadedDocument:
    """Read ``path`` and return its text per page.

    ``filename`` is the name the user knows (uploads are stored under other names); it is used
    in error messages and as the extension tie-break. Raises an UnreadableFile subclass for
    every problem with the file's content; OSError (missing file, no permission) is left to
    the caller because it is a problem of the server, not of the upload.
    """
    display_name = filename or path.name
    data = _read_bounded(path, display_name, max_bytes)
    if not data:
        raise EmptyFile(display_name, "is empty (0 bytes); there is no text to add.")
    head = data[:HEAD_BYTES]
    if is_zip(head):
        # The central directory (at the end of the file) is authoritative for Office files,
        # and must pass the decompression-bomb check before any parser inflates a part.
        stream = BytesIO(data)
        kind = inspect_office_zip(stream, display_name, file_extension(display_name))
        return _loader("pptx" if kind == "pptx" else "docx")(stream, display_name)
    kind = detect_kind(head, display_name)
    return _loader(kind)(data, display_name)


def _read_bounded(path: Path, filename: str, max_bytes: int) -> bytes:
    """Refuse oversized files from their size on disk, before reading them into memory."""
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large(filename, size, max_bytes)
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)  # the file may have grown since stat()
    if len(data) > max_bytes:
        raise _too_large(filename, len(data), max_bytes)
    return data


def _too_large(filename: str, size: int, max_bytes: int) -> TooLarge:
    return TooLarge(
        filename,
        f"is too large ({format_size(size)}); the limit is {format_size(max_bytes)}. "
        "Split it into smaller files and upload those.",
    )
