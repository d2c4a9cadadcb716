"""Mend fonts whose ToUnicode map turns a ligature glyph into its first letter only.

Some typesetting tools write ``/fi -> "f"`` into a font's ToUnicode map, so every reader
that trusts the map (pypdf, pdfminer, PyMuPDF alike) extracts "signifcant", "fnal" and
"frmly" for the Supreme Court's own prints. The font's encoding still names the glyph
(``/Differences [174 /fi]``), and that name is unambiguous, so the map entry is rewritten
to the ligature's letters before any text is extracted.
"""

from __future__ import annotations

import re

from pypdf import PdfReader
from pypdf.generic import DictionaryObject, StreamObject

_LIGATURE_GLYPHS = {"/ff": "ff", "/fi": "fi", "/fl": "fl", "/ffi": "ffi", "/ffl": "ffl"}
_BFCHAR_SECTION = re.compile(r"beginbfchar(.*?)endbfchar", re.DOTALL)
_BFCHAR_ENTRY = re.compile(r"<([0-9A-Fa-f]{2})>(\s*)<([0-9A-Fa-f]{4,})>")


def mend_ligature_maps(reader: PdfReader) -> int:
    """Rewrite truncated ligature entries in every page font; returns how many were fixed."""
    mended = 0
    seen: set[int] = set()
    for page in reader.pages:
        resources = page.get("/Resources")
        fonts = resources.get_object().get("/Font") if resources is not None else None
        if fonts is None:
            continue
        for reference in fonts.get_object().values():
            font = reference.get_object()
            if id(font) in seen or not isinstance(font, DictionaryObject):
                continue
            seen.add(id(font))
            mended += _mend_font(font)
    return mended


def _ligature_codes(font: DictionaryObject) -> dict[int, str]:
    """Character codes the font's /Differences array gives to ligature glyphs."""
    encoding = font.get("/Encoding")
    encoding = encoding.get_object() if encoding is not None else None
    if not isinstance(encoding, DictionaryObject):
        return {}
    codes: dict[int, str] = {}
    code = 0
    for item in encoding.get("/Differences", []):
        if isinstance(item, int):
            code = int(item)
            continue
        if str(item) in _LIGATURE_GLYPHS:
            codes[code] = _LIGATURE_GLYPHS[str(item)]
        code += 1
    return codes


def _mend_font(font: DictionaryObject) -> int:
    codes = _ligature_codes(font)
    to_unicode = font.get("/ToUnicode")
    stream = to_unicode.get_object() if codes and to_unicode is not None else None
    if not isinstance(stream, StreamObject):
        return 0
    mended = 0

    def mend_entry(entry: re.Match[str]) -> str:
        nonlocal mended
        letters = codes.get(int(entry.group(1), 16))
        target = bytes.fromhex(entry.group(3)).decode("utf-16-be", errors="replace")
        if letters is None or target == letters or not letters.startswith(target):
            return entry.group(0)
        mended += 1
        return f"<{entry.group(1)}>{entry.group(2)}<{letters.encode('utf-16-be').hex().upper()}>"

    def mend_section(section: re.Match[str]) -> str:
        return _BFCHAR_ENTRY.sub(mend_entry, section.group(0))

    cmap = stream.get_data().decode("latin-1")
    mended_cmap = _BFCHAR_SECTION.sub(mend_section, cmap)
    if mended:
        stream.set_data(mended_cmap.encode("latin-1"))
    return mended
