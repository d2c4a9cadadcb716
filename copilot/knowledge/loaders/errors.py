"""Errors for files we cannot turn into text.

Every message is shown to the person who uploaded the file, so it names the file and says what
is wrong and, where there is one, what to do about it. ``reason`` is a short stable code for
code paths (metrics, API responses) that must not parse the message.
"""

from __future__ import annotations

from typing import ClassVar

SUPPORTED_TYPES_HINT = (
    "supported types are PDF, Word (.docx), PowerPoint (.pptx), HTML, Markdown, plain text and CSV"
)


class UnreadableFile(ValueError):
    """A file that cannot be loaded; the message is safe and useful to show to end users."""

    reason: ClassVar[str] = "unreadable"

    def __init__(self, filename: str, problem: str) -> None:
        self.filename = filename
        self.problem = problem
        super().__init__(f'"{_printable(filename)}" {problem}')

    def __reduce__(self) -> tuple[type[UnreadableFile], tuple[str, str]]:
        # The two-argument constructor would break pickling (task queues, process pools).
        return (type(self), (self.filename, self.problem))


class EmptyFile(UnreadableFile):
    """The file has no bytes, or only whitespace once decoded."""

    reason = "empty"


class UnsupportedType(UnreadableFile):
    """The content is a format we do not read (images, archives, executables, ...)."""

    reason = "unsupported"


class EncryptedFile(UnreadableFile):
    """The file needs a password we do not have."""

    reason = "encrypted"


class CorruptFile(UnreadableFile):
    """The file claims a format but its content is damaged or truncated."""

    reason = "corrupt"


class NeedsOCR(UnreadableFile):
    """A PDF whose pages are images only: there is no text layer to extract."""

    reason = "needs_ocr"


class TooLarge(UnreadableFile):
    """The file is bigger than the configured upload limit."""

    reason = "too_large"


class DecompressionBomb(UnreadableFile):
    """A compressed container that would expand to an unreasonable size if opened."""

    reason = "decompression_bomb"


class TooSlowToRead(UnreadableFile):
    """Reading the file took longer than the parser's time limit, so it was stopped."""

    reason = "too_slow"


class TooMuchMemory(UnreadableFile):
    """Reading the file needed more memory than the parser may use."""

    reason = "too_much_memory"


def _printable(filename: str) -> str:
    """Drop control characters so a hostile file name cannot forge extra message lines."""
    return "".join(character for character in filename if character.isprintable())


def format_size(size_in_bytes: int) -> str:
    """A human size for messages, e.g. ``63.2 MiB``."""
    size = float(size_in_bytes)
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
