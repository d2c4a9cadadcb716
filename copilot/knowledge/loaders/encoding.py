"""Bytes -> str for text-ish uploads whose encoding nobody told us.

charset-normalizer is used as the fallback detector: it is pure Python with optional speedups,
maintained (it is what ``requests`` ships with), and, unlike chardet, it scores candidates by
how coherent the decoded text is, which is what tells cp1252 from cp1250 for real prose.
The cheap, certain cases (BOMs, UTF-16 without BOM, valid UTF-8) are decided before it runs.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer
from charset_normalizer.utils import is_multi_byte_encoding

from copilot.knowledge.loaders.errors import CorruptFile

_BYTE_ORDER_MARKS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control bytes that do not occur in real text; tab, LF, FF, CR and ESC do.
_BINARY_CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 12, 13, 27})
_MAX_CONTROL_BYTE_SHARE = 0.02
_SAMPLE_BYTES = 4096
_SCORING_BYTES = 64 * 1024
_CHAOS_TOLERANCE = 0.01
_TYPOGRAPHY = frozenset("€–—‘’‚“”„…«»°§±×·•")
# At most this share of a Western text's letters are accented (French: ~4 %).
_WESTERN_ACCENT_SHARE = 0.3


def byte_order_mark(data: bytes) -> tuple[bytes, str] | None:
    """The BOM at the start of ``data`` and the codec it announces, if any."""
    for mark, codec in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return mark, codec
    return None


def utf16_without_bom(data: bytes) -> str | None:
    """Spot BOM-less UTF-16 by its zero bytes: mostly-ASCII text has a NUL in every other byte."""
    sample = data[:_SAMPLE_BYTES]
    sample = sample[: len(sample) - len(sample) % 2]
    if len(sample) < 4:
        return None
    pairs = len(sample) // 2
    zeros_at_even = sample[0::2].count(0) / pairs
    zeros_at_odd = sample[1::2].count(0) / pairs
    if zeros_at_odd > 0.3 and zeros_at_even < 0.05:
        return "utf-16-le"
    if zeros_at_even > 0.3 and zeros_at_odd < 0.05:
        return "utf-16-be"
    return None


def looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file are text in some encoding rather than a binary format."""
    if byte_order_mark(head) or utf16_without_bom(head):
        return True
    sample = head[:_SAMPLE_BYTES]
    if b"\x00" in sample:
        return False
    control_bytes = len(sample) - len(sample.translate(None, _BINARY_CONTROL_BYTES))
    if control_bytes > len(sample) * _MAX_CONTROL_BYTE_SHARE:
        return False
    if _is_utf8_prefix(sample):
        return True
    return charset_normalizer.from_bytes(sample).best() is not None


def decode_text(data: bytes, filename: str) -> str:
    """Decode a whole text file; newlines become ``\\n`` and NULs are dropped.

    Raises CorruptFile when no encoding makes sense of the bytes.
    """
    text = _decode(data, filename)
    return normalize_newlines(text).replace("\x00", "")


def normalize_newlines(text: str) -> str:
    """Windows and old-Mac line ends -> ``\\n``, so later splitting only knows one kind."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes, filename: str) -> str:
    bom = byte_order_mark(data)
    if bom is not None:
        mark, codec = bom
        return data[len(mark) :].decode(codec, errors="replace")
    utf16_codec = utf16_without_bom(data)
    if utf16_codec is not None:
        return data.decode(utf16_codec, errors="replace")
    if b"\x00" not in data:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    decoded = _decode_with_detected_encoding(data)
    if decoded is None:
        raise CorruptFile(
            filename,
            "is not readable text: its character encoding could not be recognised; "
            "save it as UTF-8 and upload again.",
        )
    return decoded


def _decode_with_detected_encoding(data: bytes) -> str | None:
    """charset-normalizer's candidates, ranked by how plausible their text is.

    On short files several code pages decode without any "chaos" and charset-normalizer then
    picks one by table order: ``José;Köln`` in cp1252 came back as cp775 ``Josť;KŲln``, or
    even as Korean (johab). So cp1252, the usual legacy encoding of uploads, is always
    weighed too (it is not always among charset-normalizer's answers), and the candidates
    are ranked: most plausible non-ASCII characters first (letters or typography, with no
    capital in the middle of a lower-case word, see `_plausible_share`), then the least
    chaos, then cp1252. A multi-byte (CJK) verdict stands unless cp1252 reads as clean
    Latin text whose non-ASCII letters are the exception, as in every Western language.
    """
    matches = list(charset_normalizer.from_bytes(data))
    cp1252 = _cp1252_match(data, matches)
    if not matches and cp1252 is None:
        return None
    sample = data[:_SCORING_BYTES]
    if matches and is_multi_byte_encoding(matches[0].encoding):
        if cp1252 is not None and _reads_as_western(sample.decode("cp1252", errors="ignore")):
            return str(cp1252)
        return str(matches[0])
    contenders = [m for m in matches if not is_multi_byte_encoding(m.encoding)]
    if cp1252 is not None and cp1252 not in contenders:
        contenders.append(cp1252)
    plausibility = {
        id(m): _plausible_share(sample.decode(m.encoding, errors="ignore")) for m in contenders
    }
    most_plausible = max(plausibility.values())
    finalists = [m for m in contenders if plausibility[id(m)] == most_plausible]
    cleanest = min(m.chaos for m in finalists)
    ranked = sorted(
        finalists,
        key=lambda m: (m.chaos > cleanest + _CHAOS_TOLERANCE, m.encoding != "cp1252"),
    )
    return str(ranked[0])


def _cp1252_match(
    data: bytes, matches: list[charset_normalizer.CharsetMatch]
) -> charset_normalizer.CharsetMatch | None:
    """charset-normalizer's reading of the bytes as cp1252, None when they are not cp1252."""
    for match in matches:
        if match.encoding == "cp1252":
            return match
    return charset_normalizer.from_bytes(data, cp_isolation=["cp1252"]).best()


def _reads_as_western(text: str) -> bool:
    """Every non-ASCII character plausible, and few of the letters non-ASCII (CJK bytes read
    as cp1252 are almost all high characters; French or German text has a few per word)."""
    letters = [character for character in text if character.isalpha()]
    non_ascii = sum(1 for character in letters if ord(character) > 127)
    allowed = max(1.0, len(letters) * _WESTERN_ACCENT_SHARE)  # "Zoë" is Western too
    return _plausible_share(text) == 1.0 and non_ascii <= allowed


def _plausible_share(text: str) -> float:
    """Share of non-ASCII characters that are letters or everyday typography.

    A capital letter between lower-case ones (``KŲln``, ``MŁller``) does not count: that is
    what a wrong code page makes of an accented small letter.
    """
    non_ascii = [index for index, character in enumerate(text) if ord(character) > 127]
    if not non_ascii:
        return 1.0
    plausible = sum(1 for index in non_ascii if _plausible_at(text, index))
    return plausible / len(non_ascii)


def _plausible_at(text: str, index: int) -> bool:
    character = text[index]
    if character in _TYPOGRAPHY:
        return True
    if not character.isalpha():
        return False
    if character.isupper() and 0 < index < len(text) - 1:
        before, after = text[index - 1], text[index + 1]
        if before.isalpha() and after.islower():
            return False
    return True


def _is_utf8_prefix(sample: bytes) -> bool:
    """Valid UTF-8 apart from a character cut in half at the end of the sample."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")


def tidy_extracted_text(text: str) -> str:
    """Trim trailing spaces and runs of blank lines that extraction leaves behind."""
    text = normalize_newlines(text).replace("\x00", "")
    text = _TRAILING_SPACE.sub("\n", text)
    return _EXTRA_BLANK_LINES.sub("\n\n", text).strip()
