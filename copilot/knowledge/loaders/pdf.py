"""PDF -> text per page with pypdf.

pypdf is pure Python (no native build, no AGPL licence like PyMuPDF), actively maintained by
the py-pdf team, decrypts RC4/AES files with ``cryptography``, and enforces its own
decompression limits. Its text order follows the content stream, which is good enough for
search chunks; pages keep their real numbers so answers can cite them.

Text turned sideways in a page's margin (arXiv's "arXiv:2004.04906v3 [cs.CL] 30 Sep 2020"
stamp along the left edge, printers' marks outside the page) is not the document's content,
yet plain extraction puts it in the middle of a sentence, where answers then quote it. We
drop it by position: pypdf reports each fragment's matrices, so rotated fragments outside
the area the page's upright text occupies are left out (see `_BodyText`).

The extracted lines are then repaired once, here, for every later reader (search, chunks,
quoted answers): fonts whose ligatures map to one letter are mended before extraction
(`pdf_ligatures`), and typeset lines are joined back into paragraphs (`text_repair`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import DependencyError, LimitReachedError

from copilot.knowledge.loaders.document import LoadedDocument, Page, document_of
from copilot.knowledge.loaders.encoding import tidy_extracted_text
from copilot.knowledge.loaders.errors import (
    CorruptFile,
    DecompressionBomb,
    EmptyFile,
    EncryptedFile,
    NeedsOCR,
)
from copilot.knowledge.loaders.pdf_ligatures import mend_ligature_maps
from copilot.knowledge.loaders.text_repair import DocumentProfile, repair_page_text

logger = logging.getLogger(__name__)

# pypdf renders wide glyph gaps as tabs or space runs (the Korean fixture has a tab between
# every word); for search they are just word breaks.
_HORIZONTAL_GAPS = re.compile(r"[ \t]*\t[ \t]*| {2,}")


def load_pdf(data: bytes, filename: str) -> LoadedDocument:
    """Extract each page's text; raise EncryptedFile, CorruptFile or NeedsOCR when we can't."""
    reader = _open(data, filename)
    try:
        page_objects = list(reader.pages)
    except Exception as error:  # a broken page tree surfaces only here
        raise _wrapped(error, filename) from error
    try:
        mend_ligature_maps(reader)
    except Exception:  # a font we cannot mend still extracts, with its own damage
        logger.warning("Could not check the fonts of %r for ligatures", filename, exc_info=True)

    if not page_objects:
        raise EmptyFile(filename, "has no pages.")
    extracted: list[tuple[int, str]] = []
    failed_pages = 0
    for number, page_object in enumerate(page_objects, start=1):
        try:
            raw_text = _body_text(page_object)
        except LimitReachedError as error:
            raise _wrapped(error, filename) from error
        except MemoryError:
            raise  # not a broken page: the reader's memory limit (see loaders.isolation)
        except Exception:
            # One broken content stream should not lose the other 300 pages.
            logger.warning("Skipping unreadable page %d of %r", number, filename, exc_info=True)
            failed_pages += 1
            continue
        text = tidy_extracted_text(_HORIZONTAL_GAPS.sub(" ", raw_text))
        if text:
            extracted.append((number, text))

    # Line-end hyphens are decided by how the whole document spells the word.
    profile = DocumentProfile.of(text for _, text in extracted)
    pages = [Page(number=n, text=repair_page_text(text, profile)) for n, text in extracted]

    if not pages:
        if failed_pages == len(page_objects):
            raise CorruptFile(
                filename,
                "is damaged: none of its pages could be read; export it again and upload "
                "the new copy.",
            )
        raise NeedsOCR(
            filename,
            "has no extractable text; it needs OCR (it looks like a scan or contains only "
            "images). Run it through OCR, or export it with a text layer, and upload again.",
        )
    return document_of("pdf", pages, total_pages=len(page_objects))


# Orientations as pypdf names them: 0 is upright, 90 and 270 run along the side edges.
_UPRIGHT = 0
_SIDEWAYS = (90, 270)


@dataclass
class _Fragment:
    """A piece of text as pypdf emits it, with where on the page it starts and its turn."""

    text: str
    x: float
    y: float
    orientation: int


@dataclass
class _BodyText:
    """Collects a page's fragments through pypdf's visitor and keeps the body's text."""

    fragments: list[_Fragment] = field(default_factory=list)

    def visit(self, text: str, cm: Any, tm: Any, font: Any, size: Any) -> None:
        # The fragment's start in page space is the text matrix applied to the CTM.
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        turn_b = tm[0] * cm[1] + tm[1] * cm[3]
        turn_d = tm[2] * cm[1] + tm[3] * cm[3]
        self.fragments.append(_Fragment(text, x, y, _orientation(turn_b, turn_d)))

    def text(self, page: PageObject) -> str:
        """The page's text without rotated fragments that lie outside the upright body.

        The body is where the upright text starts, left to right (its right edge mirrors
        the left margin, as fragments report only where they start) and bottom to top. A
        page whose text is mostly sideways (a landscape table) is kept whole, and so is
        rotated text inside the body (a turned column header).
        """
        characters: Counter[int] = Counter()
        for fragment in self.fragments:
            characters[fragment.orientation] += len(fragment.text.strip())
        upright = [f for f in self.fragments if f.orientation == _UPRIGHT and f.text.strip()]
        if not upright or characters.most_common(1)[0][0] != _UPRIGHT:
            return "".join(f.text for f in self.fragments)
        box = page.cropbox
        left, right = float(box.left), float(box.right)
        bottom, top = float(box.bottom), float(box.top)
        body_left = min(f.x for f in upright)
        body_right = max(max(f.x for f in upright), right - (body_left - left))
        body_bottom = min(f.y for f in upright)
        body_top = max(f.y for f in upright)

        def in_margin(fragment: _Fragment) -> bool:
            if fragment.orientation == _UPRIGHT:
                return False
            if not (left <= fragment.x <= right and bottom <= fragment.y <= top):
                return True  # drawn off the page: trim or registration marks
            if fragment.orientation in _SIDEWAYS:
                return not body_left <= fragment.x <= body_right
            return not body_bottom <= fragment.y <= body_top

        # A dropped fragment keeps its line break, so the lines around it stay apart.
        return "".join(
            ("\n" if "\n" in f.text else "") if in_margin(f) else f.text for f in self.fragments
        )


def _orientation(b: float, d: float) -> int:
    """pypdf's orientation of a text matrix [a b c d e f]: 0, 90, 180 or 270 degrees."""
    if d > 1e-6:
        return 0
    if d < -1e-6:
        return 180
    return 90 if b > 0 else 270


def _body_text(page: PageObject) -> str:
    body = _BodyText()
    page.extract_text(visitor_text=body.visit)
    return body.text(page)


def _open(data: bytes, filename: str) -> PdfReader:
    try:
        reader = PdfReader(BytesIO(data))
    except Exception as error:  # pypdf raises PdfReadError, but also ValueError, KeyError ...
        raise _wrapped(error, filename) from error
    if reader.is_encrypted:
        # pypdf already tried the empty user password: files with only an owner password
        # (copy/print protection) open fine and are legitimately readable.
        try:
            unlocked = reader.decrypt("") != PasswordType.NOT_DECRYPTED
        except DependencyError as error:
            raise EncryptedFile(
                filename,
                "uses an encryption method we cannot open; remove the protection and upload again.",
            ) from error
        except Exception as error:
            raise _wrapped(error, filename) from error
        if not unlocked:
            raise EncryptedFile(
                filename, "is password-protected; remove the password and upload again."
            )
    return reader


def _wrapped(error: Exception, filename: str) -> CorruptFile | DecompressionBomb:
    """Translate a pypdf failure into the error the user sees."""
    if isinstance(error, LimitReachedError) and "decompress" in str(error).lower():
        return DecompressionBomb(
            filename,
            "was not opened because it looks like a decompression bomb: a stream expands "
            "beyond the safety limit.",
        )
    return CorruptFile(
        filename,
        "is damaged or not a valid PDF (it may be truncated); export it again and upload "
        "the new copy.",
    )
