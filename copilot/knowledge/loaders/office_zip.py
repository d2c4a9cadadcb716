"""Safety and identity checks for ZIP-based Office files, before any parser touches them.

python-docx and python-pptx inflate whole XML parts into memory, so a small upload that expands
to gigabytes would take the worker down. The ZIP central directory states every member's size
up front, and :mod:`zipfile` refuses to read past a stated size (CRC check), so checking the
directory is both cheap and trustworthy.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from typing import IO

from copilot.knowledge.loaders.errors import (
    SUPPORTED_TYPES_HINT,
    CorruptFile,
    DecompressionBomb,
    UnsupportedType,
    format_size,
)

ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
MAX_UNCOMPRESSED_BYTES = 200 * 2**20
MAX_COMPRESSION_RATIO = 100
# Small members compress extremely well when they are all zeros or spaces; only a big member
# with an absurd ratio is suspicious.
RATIO_CHECK_MIN_BYTES = 5 * 2**20
MAX_MEMBERS = 10_000

_OFFICE_LABELS = {"docx": "Word (.docx)", "pptx": "PowerPoint (.pptx)"}


def is_zip(head: bytes) -> bool:
    """Whether the bytes start like a ZIP archive (which all OOXML files are)."""
    return head.startswith(ZIP_SIGNATURES)


def inspect_office_zip(stream: IO[bytes], filename: str, extension: str) -> str:
    """Return "docx" or "pptx" for a safe Office ZIP; raise for bombs, damage or other ZIPs."""
    try:
        with zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
    except Exception as error:  # zipfile raises BadZipFile, ValueError, EOFError, OSError ...
        raise CorruptFile(
            filename,
            f"is damaged: {_expected_label(extension)} could not be opened "
            "(the file is truncated or not a valid ZIP container); "
            "save it again and upload the new copy.",
        ) from error
    finally:
        stream.seek(0)
    refuse_decompression_bomb(members, filename)
    return office_kind_from_member_names(
        (member.filename for member in members), filename, extension, complete=True
    )


def refuse_decompression_bomb(members: list[zipfile.ZipInfo], filename: str) -> None:
    """Raise DecompressionBomb when the archive would expand beyond what any real file needs."""
    refusal = "was not opened because it looks like a decompression bomb: it {} (limit {})."
    if len(members) > MAX_MEMBERS:
        raise DecompressionBomb(
            filename, refusal.format(f"has {len(members)} parts", f"{MAX_MEMBERS} parts")
        )
    total_size = sum(member.file_size for member in members)
    if total_size > MAX_UNCOMPRESSED_BYTES:
        raise DecompressionBomb(
            filename,
            refusal.format(
                f"expands to {format_size(total_size)}", format_size(MAX_UNCOMPRESSED_BYTES)
            ),
        )
    for member in members:
        if member.file_size < RATIO_CHECK_MIN_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > MAX_COMPRESSION_RATIO:
            raise DecompressionBomb(
                filename,
                refusal.format(
                    f"has a part ({member.filename}) compressed {ratio:.0f} to 1",
                    f"{MAX_COMPRESSION_RATIO} to 1",
                ),
            )


def office_kind_from_member_names(
    names: Iterable[str], filename: str, extension: str, *, complete: bool
) -> str:
    """Tell Word from PowerPoint from other ZIPs by their part folders.

    With ``complete=False`` (only the names found in the first bytes of the file) an Office
    extension breaks the tie; the loader re-checks against the full directory.
    """
    name_list = list(names)
    folders = {name.split("/", 1)[0] for name in name_list if "/" in name}
    if "word" in folders:
        return "docx"
    if "ppt" in folders:
        return "pptx"
    if "xl" in folders:
        raise UnsupportedType(
            filename, "is an Excel workbook; export the sheet as CSV and upload that."
        )
    if "mimetype" in name_list:
        raise UnsupportedType(
            filename,
            "is an OpenDocument file; save it as .docx or .pptx (or PDF) and upload that.",
        )
    if extension in _OFFICE_LABELS:
        if not complete:
            return extension
        raise CorruptFile(
            filename,
            f"is damaged: it is a ZIP file but has none of the parts of a "
            f"{_OFFICE_LABELS[extension]} document; save it again and upload the new copy.",
        )
    raise UnsupportedType(
        filename,
        f"is a ZIP archive; unpack it and upload the files inside ({SUPPORTED_TYPES_HINT}).",
    )


def local_member_names(head: bytes) -> list[str]:
    """Member names from the local file headers found in the first bytes of a ZIP."""
    names: list[str] = []
    position = head.find(b"PK\x03\x04")
    while position != -1 and position + 30 <= len(head):
        name_length = int.from_bytes(head[position + 26 : position + 28], "little")
        name_bytes = head[position + 30 : position + 30 + name_length]
        names.append(name_bytes.decode("utf-8", errors="replace"))
        position = head.find(b"PK\x03\x04", position + 30 + name_length)
    return names


def _expected_label(extension: str) -> str:
    label = _OFFICE_LABELS.get(extension)
    return f"this {label} file" if label else "this Office file"
