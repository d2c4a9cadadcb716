"""Work out what a file is from its content; the file name only breaks ties between text formats.

Users rename files and browsers send wrong MIME types, so magic bytes decide. ``filetype`` (a
small, dependency-free, maintained signature table) names the binary formats we reject, so the
message can say "is a PNG image" instead of "unsupported".
"""

from __future__ import annotations

import re
from pathlib import PurePath

import filetype

from copilot.knowledge.loaders.encoding import byte_order_mark, looks_like_text, utf16_without_bom
from copilot.knowledge.loaders.errors import (
    SUPPORTED_TYPES_HINT,
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    UnsupportedType,
)
from copilot.knowledge.loaders.office_zip import (
    is_zip,
    local_member_names,
    office_kind_from_member_names,
)

OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# A password-protected .docx/.pptx is not a ZIP but an OLE2 container holding this stream.
_ENCRYPTED_PACKAGE_NAME = "EncryptedPackage".encode("utf-16-le")
PDF_MARKER = b"%PDF-"
# The PDF spec tolerates junk before the header; readers look within the first KiB.
PDF_MARKER_WINDOW = 1024

MARKDOWN_EXTENSIONS = frozenset({"md", "markdown", "mdown", "mkd"})
CSV_EXTENSIONS = frozenset({"csv", "tsv"})
HTML_EXTENSIONS = frozenset({"html", "htm", "xhtml"})
PLAIN_TEXT_EXTENSIONS = frozenset({"txt", "text", "log"})
_CLAIMED_BINARY_LABELS = {"pdf": "PDF", "docx": "Word (.docx)", "pptx": "PowerPoint (.pptx)"}

_LEADING_NOISE = re.compile(r"^(?:\s+|<\?xml[^>]*\?>|<!--.*?-->)*", re.DOTALL | re.IGNORECASE)
_DOCUMENT_HTML = re.compile(r"<!doctype\s+html|<(?:html|head|body)[\s>]", re.IGNORECASE)
_FRAGMENT_HTML = re.compile(
    r"<(?:h[1-6]|p|div|span|table|ul|ol|a|section|article|main|meta|title|br|img|link|form"
    r"|script|style)[\s/>]",
    re.IGNORECASE,
)
_SNIFF_CHARACTERS = 4096


def file_extension(filename: str) -> str:
    """Lower-case extension without the dot ("" if none)."""
    return PurePath(filename).suffix.lower().lstrip(".")


def detect_kind(data_head: bytes, filename: str) -> str:
    """Classify a file from its first bytes; raise UnreadableFile for what we cannot read.

    Returns one of "pdf", "docx", "pptx", "html", "markdown", "text", "csv".
    """
    extension = file_extension(filename)
    if not data_head:
        raise EmptyFile(filename, "is empty (0 bytes); there is no text to add.")
    if PDF_MARKER in data_head[:PDF_MARKER_WINDOW]:
        return "pdf"
    if is_zip(data_head):
        return office_kind_from_member_names(
            local_member_names(data_head), filename, extension, complete=False
        )
    if data_head.startswith(OLE2_SIGNATURE):
        _raise_for_ole2(data_head, filename, extension)
    if not looks_like_text(data_head):
        _raise_for_binary(data_head, filename, extension)
    return _text_kind(data_head, extension, filename)


def _raise_for_ole2(data_head: bytes, filename: str, extension: str) -> None:
    if _ENCRYPTED_PACKAGE_NAME in data_head or extension in {"docx", "pptx", "xlsx"}:
        raise EncryptedFile(
            filename, "is password-protected; remove the password and upload again."
        )
    raise UnsupportedType(
        filename,
        "is a legacy Office 97-2003 file (.doc/.ppt/.xls); save it as .docx or .pptx "
        "and upload that.",
    )


def _raise_for_binary(data_head: bytes, filename: str, extension: str) -> None:
    guess = filetype.guess(data_head)
    if guess is not None:
        family = guess.mime.split("/", 1)[0]
        noun = {"image": "image", "video": "video", "audio": "audio file"}.get(family, "file")
        label = guess.extension.upper()
        raise UnsupportedType(
            filename, f"is {_indefinite_article(label)} {label} {noun}; {SUPPORTED_TYPES_HINT}."
        )
    if extension in _CLAIMED_BINARY_LABELS:
        label = _CLAIMED_BINARY_LABELS[extension]
        raise CorruptFile(
            filename,
            f"is not a valid {label} file: its content is damaged or it only has the "
            f"extension .{extension}; export it again and upload the new copy.",
        )
    raise UnsupportedType(filename, f"is a binary file of an unknown type; {SUPPORTED_TYPES_HINT}.")


def _indefinite_article(acronym: str) -> str:
    """ "an EXE", "a PNG": acronyms are read letter by letter, so the letter's name decides."""
    return "an" if acronym[:1] in set("AEFHILMNORSX") else "a"


def _text_kind(data_head: bytes, extension: str, filename: str) -> str:
    sample = _sniff_sample(data_head)
    if sample.startswith("{\\rtf"):
        raise UnsupportedType(
            filename, "is a Rich Text (RTF) file; save it as .docx or PDF and upload that."
        )
    if sample.startswith("<svg") or extension == "svg":
        raise UnsupportedType(filename, f"is an SVG image; {SUPPORTED_TYPES_HINT}.")
    if _DOCUMENT_HTML.match(sample):
        return "html"
    if extension in MARKDOWN_EXTENSIONS:
        return "markdown"
    if extension in CSV_EXTENSIONS:
        return "csv"
    if extension in PLAIN_TEXT_EXTENSIONS:
        return "text"
    if extension in HTML_EXTENSIONS or _FRAGMENT_HTML.match(sample):
        return "html"
    return "text"


def _sniff_sample(data_head: bytes) -> str:
    """The start of the text with BOM, whitespace, XML declaration and comments removed."""
    bom = byte_order_mark(data_head)
    if bom is not None:
        mark, codec = bom
        raw, codec_name = data_head[len(mark) :], codec
    else:
        raw, codec_name = data_head, utf16_without_bom(data_head) or "utf-8"
    # Only markup is sniffed, which is ASCII in every encoding we meet, so errors can be ignored.
    text = raw[: _SNIFF_CHARACTERS * 4].decode(codec_name, errors="ignore")
    return _LEADING_NOISE.sub("", text[:_SNIFF_CHARACTERS], count=1)
