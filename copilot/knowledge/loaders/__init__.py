"""Turn uploaded files into text per page, or explain to the user why a file can't be read.

One module per format; each names the library it uses and why. Use :func:`load_document`.
"""

from copilot.knowledge.loaders.detection import detect_kind
from copilot.knowledge.loaders.document import MIME_TYPES, LoadedDocument, Page
from copilot.knowledge.loaders.errors import (
    CorruptFile,
    DecompressionBomb,
    EmptyFile,
    EncryptedFile,
    NeedsOCR,
    TooLarge,
    TooMuchMemory,
    TooSlowToRead,
    UnreadableFile,
    UnsupportedType,
)
from copilot.knowledge.loaders.isolation import ParseLimits, ParserCrashed, load_document_isolated
from copilot.knowledge.loaders.load import DEFAULT_MAX_BYTES, load_document

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MIME_TYPES",
    "CorruptFile",
    "DecompressionBomb",
    "EmptyFile",
    "EncryptedFile",
    "LoadedDocument",
    "NeedsOCR",
    "Page",
    "ParseLimits",
    "ParserCrashed",
    "TooLarge",
    "TooMuchMemory",
    "TooSlowToRead",
    "UnreadableFile",
    "UnsupportedType",
    "detect_kind",
    "load_document",
    "load_document_isolated",
]
