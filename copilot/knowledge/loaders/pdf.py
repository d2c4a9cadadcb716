"""PDF -> text per page with pypdf.

pypdf is pure Python (no native build, no AGPL licence like PyMuPDF), actively maintained by
the py-pdf team, decrypts RC4/AES files with ``cryptography``, and enforces its own
decompression limits. Its text order follows the content stream, which is good enough for
search chunks; pages keep their real numbers so answers can cite them.
"""

from __future__ import annotations

import logging
import re
from io import BytesIO

from pypdf import PasswordType, PdfReader
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

logger = logging.getLogger(__name__)

# Fonts without a ToUnicode map make pypdf return presentation-form ligatures; search needs
# the plain letters.
_LIGATURES = str.maketrans(
    {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
)

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

    if not page_objects:
        raise EmptyFile(filename, "has no pages.")
    pages: list[Page] = []
    failed_pages = 0
    for number, page_object in enumerate(page_objects, start=1):
        try:
            raw_text = page_object.extract_text() or ""
        except LimitReachedError as error:
            raise _wrapped(error, filename) from error
        except Exception:
            # One broken content stream should not lose the other 300 pages.
            logger.warning("Skipping unreadable page %d of %r", number, filename, exc_info=True)
            failed_pages += 1
            continue
        text = tidy_extracted_text(_HORIZONTAL_GAPS.sub(" ", raw_text.translate(_LIGATURES)))
        if text:
            pages.append(Page(number=number, text=text))

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
