"""Undo the damage PDF text extraction does to prose, once, when a document is loaded.

A PDF stores positioned glyphs, not paragraphs: pypdf gives back the typeset lines, with
words the typesetter hyphenated at a line end ("im-\\nportant"), ligature glyphs ("ﬁ"),
footnotes printed under the body whose numbers run into their first word ("6We use ..."),
and drop capitals set apart from their word ("D espite"). Left as they are, a quoted
sentence reads "a ddimensional vector" or ends "... differs from 6We use the unfiltered
TriviaQA version". No library joins typeset lines back into paragraphs (pypdf, pdfminer and
PyMuPDF all return lines), so this module does it, and decides each line-end hyphen from
the whole document's own spelling rather than from the chunk at hand.

The result is one line per paragraph, heading, list item or footnote. Pages stay apart:
a sentence that runs over a page break is never joined to the next page (each page is
repaired, and later chunked, on its own).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# Presentation-form ligatures (U+FB00-FB06): their NFKC forms are the plain letters. Full
# NFKC is not applied, as it would also turn "x²" into "x2" and "½" into "1⁄2".
_LIGATURES = str.maketrans(
    {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
)
_SOFT_HYPHEN = "\u00ad"
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
# A word cut at the line end by the typesetter: letters, then a hyphen (or a soft hyphen).
_HYPHENATED_END = re.compile(r"([^\W\d_]+)[-\u00ad]$")
_LEADING_WORD = re.compile(r"^[^\W\d_]+")
# A footnote at the foot of the page: its number runs into the capitalised first word.
_FOOTNOTE_START = re.compile(r"^\d{1,2}(?=[A-Z][A-Za-z])")
_LIST_ITEM = re.compile(r"^(?:[-*•▪●◦‣–—]\s|\(?\d{1,2}[.)]\s|\(?[a-z]\)\s|\([ivx]{1,4}\)\s)")
_SECTION_HEADING = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2})*\.?|[A-Z]\.|[IVX]{1,4}\.)\s+[A-Z]")
_LABEL = re.compile(r"^[A-Z][\w ]{0,30}:\s")
_DROP_CAPITAL = re.compile(r"^([B-HJ-Z]) ([a-z]{2,})\b")
_TITLE_CASE_SMALL_WORDS = frozenset(
    ["a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with"]
)
_SENTENCE_END = ".!?:;"
# Pages with fewer cased letters than this share are in a script without capitals.
_CASED_LETTER_SHARE = 0.5
# A line on at least this share of the pages (and on 3 or more) is a running head or mark.
_RUNNING_PAGE_SHARE = 0.5
_LEAST_RUNNING_PAGES = 3
_DIGITS = re.compile(r"\d+")
# A line shorter than this share of the page's typical line ends its paragraph.
_SHORT_LINE_SHARE = 0.6
# Lines with fewer letters than this share are table rows, formulas or numbers, not prose.
_PROSE_LETTER_SHARE = 0.5


@dataclass(frozen=True)
class DocumentProfile:
    """What repairing a page needs to know of the whole document.

    ``words``: how often each word is spelled within a line, lowercased. Only words inside
    a line count, so a hyphen the typesetter added at a line end never votes; "non-segmented"
    written once in mid-line shows the hyphen is the author's.
    ``running_lines``: lines printed on many pages (running heads, "Page Proof Pending
    Publication"), digits left out; they are never joined to the text around them.
    """

    words: Counter[str]
    running_lines: frozenset[str]

    @classmethod
    def of(cls, texts: Iterable[str]) -> DocumentProfile:
        words: Counter[str] = Counter()
        pages_with_line: Counter[str] = Counter()
        page_count = 0
        for text in texts:
            page_count += 1
            lines = [line.strip() for line in text.translate(_LIGATURES).splitlines()]
            pages_with_line.update({_without_digits(line) for line in lines if line})
            for line in lines:
                found = _WORD.findall(line)
                if found and _HYPHENATED_END.search(line):
                    found = found[:-1]  # the first half of a word the line end cut
                words.update(word.lower() for word in found)
        least_pages = max(_LEAST_RUNNING_PAGES, page_count * _RUNNING_PAGE_SHARE)
        running = frozenset(
            line for line, pages in pages_with_line.items() if line and pages >= least_pages
        )
        return cls(words, running)

    def count(self, word: str) -> int:
        return self.words[word.lower()]

    def is_running(self, line: str) -> bool:
        return _without_digits(line) in self.running_lines


def _without_digits(line: str) -> str:
    return _DIGITS.sub("", line).strip()


def repair_page_text(text: str, profile: DocumentProfile) -> str:
    """One page's extracted text with its typeset lines joined back into paragraphs."""
    lines = [line.strip() for line in text.translate(_LIGATURES).splitlines()]
    if not _is_cased_script(text):
        # Headings and wraps are told apart by capitals and sentence ends; Korean, Chinese
        # or Japanese lines have neither (and Chinese ones join without a space), so they
        # are kept as extracted rather than glued into the table cell below them.
        return "\n".join(lines).strip()
    lengths = [len(line) for line in lines if line]
    typical = statistics.median(lengths) if lengths else 0
    paragraphs: list[str] = []
    current = last_line = ""
    in_footnote = False
    for line in lines:
        if not line:
            _flush(paragraphs, current, profile)
            if paragraphs and paragraphs[-1]:
                paragraphs.append("")  # a blank line the PDF itself has stays
            current = last_line = ""
            continue
        footnote = _FOOTNOTE_START.match(line)
        if footnote:
            # A footnote never continues the sentence above it; its number is dropped
            # because the mark it answers is glued to a body word ("TriviaQA6") anyway.
            line = line[footnote.end() :]
        # The text after a footnote is the next column: a footnote ends with its sentence.
        ends_footnote = in_footnote and last_line[-1:] in _SENTENCE_END
        running = profile.is_running(line) or profile.is_running(last_line)
        apart = bool(footnote) or ends_footnote or running
        if current and not apart and _continues(last_line, line, typical):
            current = _joined(current, line, profile)
        else:
            _flush(paragraphs, current, profile)
            current = line
            in_footnote = bool(footnote)
        last_line = line
    _flush(paragraphs, current, profile)
    return "\n".join(paragraphs).strip()


def _flush(paragraphs: list[str], paragraph: str, profile: DocumentProfile) -> None:
    if paragraph:
        paragraphs.append(_without_drop_capital(paragraph, profile))


def _continues(previous: str, line: str, typical: float) -> bool:
    """Whether ``line`` wraps the line ``previous`` rather than starting a new paragraph."""
    if _LIST_ITEM.match(line) or not _is_prose(line):
        return False  # a list item, or a table row or formula
    if _HYPHENATED_END.search(previous):
        # A word cut at the line end goes on in lower case ("im-\nportant"), with a number
        # ("COVID-\n19") or a name ("post-\nLynch" on a full line), but not into a short
        # line that starts with a capital: a watermark such as "Page Proof Pending Publication".
        return line[0].islower() or line[0].isdigit() or len(line) >= _SHORT_LINE_SHARE * typical
    if not _is_prose(previous) and not line[0].islower():
        return False  # after a table row, only a lower-case line goes on (citations do)
    if len(previous) < _SHORT_LINE_SHARE * typical or len(previous.split()) <= 3:
        return False  # a paragraph's last line, a heading or a label ("Syllabus")
    if _SECTION_HEADING.match(line) and (
        _is_title(line) or len(line) < _SHORT_LINE_SHARE * typical
    ):
        return False  # "4.1 Wikipedia Data Pre-processing" after a full line
    if previous[-1] in _SENTENCE_END:
        return not _LABEL.match(line)  # "Keywords: ..." after the abstract's last sentence
    # A full-width line before a capital can still be a heading ("4.1 Data Sources").
    return not (line[0].isupper() and (_SECTION_HEADING.match(previous) or _is_title(previous)))


def _joined(previous: str, line: str, profile: DocumentProfile) -> str:
    """``previous`` and the wrapped ``line`` as one, with a line-end hyphen resolved."""
    cut = _HYPHENATED_END.search(previous)
    if cut is None:
        return f"{previous} {line}"
    head = previous[: cut.start()]
    left = cut.group(1)
    if previous.endswith(_SOFT_HYPHEN):
        return f"{head}{left}{line}"
    right_match = _LEADING_WORD.match(line)
    if right_match is None:  # "COVID-\n19": the hyphen is part of the name
        return f"{previous}{line}"
    right = right_match.group(0)
    if _keeps_hyphen(previous, line, left, right, profile):
        return f"{previous}{line}"
    return f"{head}{left}{line}"


def _keeps_hyphen(
    previous: str, line: str, left: str, right: str, profile: DocumentProfile
) -> bool:
    """Whether the hyphen ending ``previous`` is the author's rather than the typesetter's."""
    if len(left) == 1 or right[0].isupper():
        return True  # "d-\ndimensional", "e-\nmail", "post-\nLynch": not a syllable break
    if "-" in previous.rsplit(None, 1)[-1][:-1] or "-" in line.split(None, 1)[0]:
        return True  # part of a longer compound: "question-to-\npositive", "state-\nof-the-art"
    # The document's own spelling decides ("non-segmented" or "important" elsewhere); a
    # word it never writes whole nor hyphenated is most likely a typesetter's break.
    return profile.count(f"{left}-{right}") > profile.count(f"{left}{right}")


def _without_drop_capital(paragraph: str, profile: DocumentProfile) -> str:
    """Rejoin a drop capital set apart from its word: "D espite" -> "Despite".

    Only when the rest of the word is no word of the document, so "M de la dimension"
    (a variable before a French word) stays as it is.
    """
    match = _DROP_CAPITAL.match(paragraph)
    if match is None or profile.count(match.group(2)) > 1:
        return paragraph
    return f"{match.group(1)}{paragraph[match.start(2) :]}"


def _is_cased_script(text: str) -> bool:
    """Whether most letters have upper and lower case (Latin, Greek, Cyrillic)."""
    letters = [character for character in text if character.isalpha()]
    cased = sum(character.isupper() or character.islower() for character in letters)
    return cased >= _CASED_LETTER_SHARE * len(letters)


def _is_prose(line: str) -> bool:
    visible = [character for character in line if not character.isspace()]
    letters = sum(character.isalpha() for character in visible)
    return letters >= _PROSE_LETTER_SHARE * len(visible)


def _is_title(line: str) -> bool:
    """Every word capitalised but the small ones title case leaves alone."""
    words = _WORD.findall(line)
    return bool(words) and all(
        word[0].isupper() or word.lower() in _TITLE_CASE_SMALL_WORDS for word in words
    )
