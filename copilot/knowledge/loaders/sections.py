"""A text with ``#`` headings -> one Page per section, located by its heading path.

Word, HTML and Markdown have no pages, so a citation can only say where a passage is by the
headings above it ("4 Travel > 4.2 Hotels"). Cutting the text at every heading means no
chunk spans two sections. A section holding nothing but its heading is joined to the next
one (its title is in that one's path), so a heading never becomes a chunk of its own.

Markdown is parsed with markdown-it-py (CommonMark): a ``#`` inside a code block is not a
heading and underlined (setext) headings are. The Word and HTML loaders write their headings
as ``#`` lines themselves, so for them those lines are the headings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt

from copilot.knowledge.loaders.document import Page

PATH_SEPARATOR = " > "
_RENDERED_HEADING = re.compile(r"^(#{1,6}) (.+)$")
_markdown = MarkdownIt("commonmark")


@dataclass(frozen=True)
class Heading:
    line: int  # 0-based index of the heading's first line
    line_count: int  # a setext heading takes two
    level: int
    title: str


def rendered_headings(text: str) -> list[Heading]:
    """The ``#`` lines that the Word and HTML loaders write for headings."""
    headings = []
    for index, line in enumerate(text.split("\n")):
        match = _RENDERED_HEADING.match(line)
        if match:
            headings.append(Heading(index, 1, len(match.group(1)), _clean(match.group(2))))
    return headings


def markdown_headings(text: str) -> list[Heading]:
    """Headings as CommonMark reads them (ATX and setext, none inside code)."""
    tokens = _markdown.parse(text)
    headings = []
    for opening, inline in zip(tokens, tokens[1:], strict=False):
        if opening.type == "heading_open" and opening.map is not None and opening.level == 0:
            start, end = opening.map
            title = _clean(inline.content)
            if title:
                headings.append(Heading(start, end - start, int(opening.tag[1:]), title))
    return headings


def pages_by_heading(text: str, headings: Sequence[Heading]) -> list[Page]:
    """Cut ``text`` before each heading; each Page's location is its heading path."""
    lines = text.split("\n")
    pages: list[Page] = []
    path: list[Heading] = []
    carried = ""  # heading-only sections, waiting for the section that gives them text
    preamble = _joined(lines[: headings[0].line] if headings else lines)
    if preamble:
        pages.append(Page(number=None, text=preamble))
    for position, heading in enumerate(headings):
        end = headings[position + 1].line if position + 1 < len(headings) else len(lines)
        while path and path[-1].level >= heading.level:
            path.pop()
        path.append(heading)
        section = _joined(lines[heading.line : end])
        body = _joined(lines[heading.line + heading.line_count : end])
        if not body and position + 1 < len(headings):
            carried = f"{carried}\n\n{section}" if carried else section
            continue
        if carried:
            section, carried = f"{carried}\n\n{section}", ""
        location = PATH_SEPARATOR.join(h.title for h in path)
        pages.append(Page(number=None, text=section, location=location))
    return pages


def _joined(lines: Sequence[str]) -> str:
    return "\n".join(lines).strip("\n").rstrip()


def _clean(title: str) -> str:
    return " ".join(title.replace("*", "").replace("`", "").split()).strip(" #")
