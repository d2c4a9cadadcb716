"""HTML -> the page's main text with BeautifulSoup on the lxml parser.

BeautifulSoup is the standard, maintained tolerant HTML tree API and its UnicodeDammit honours
BOMs and ``<meta charset>`` before guessing; lxml makes it fast and copes with broken markup.
Site chrome (navigation, headers, footers, sidebars, forms), scripts, styles and hidden
elements are skipped; headings become ``#`` lines, block elements paragraph breaks, and table
rows one line each, so the structure survives into the chunks.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from copilot.knowledge.loaders.document import LoadedDocument, document_of
from copilot.knowledge.loaders.errors import CorruptFile, EmptyFile
from copilot.knowledge.loaders.sections import pages_by_heading, rendered_headings

SKIPPED_TAGS = frozenset(
    {
        "script", "style", "nav", "header", "footer", "aside", "noscript", "form",
        "template", "svg", "iframe", "object", "embed", "canvas", "button", "select",
        "textarea", "input", "dialog", "head",
    }
)  # fmt: skip
# Landmark roles that mark the same chrome on <div>s.
SKIPPED_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
# Inside an article, <header>/<footer> hold its title and byline, not site chrome.
ARTICLE_SCOPED_TAGS = frozenset({"header", "footer"})
BLOCK_TAGS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "center", "dd", "details",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "hr", "li", "main", "ol", "p",
        "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "ul",
    }
)  # fmt: skip
HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
_CELL_MARK = "\x1f"  # a unit separator never occurs in page text; it marks table cells
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")
_BARE_MARKER = re.compile(r"^(?:#{1,6}|-)$")  # a heading or bullet whose text was all markup


@dataclass(frozen=True)
class _Context:
    in_cell: bool = False
    in_article: bool = False
    in_list_item: bool = False
    in_preformatted: bool = False


def load_html(data: bytes, filename: str) -> LoadedDocument:
    """Title plus main text of an HTML page, one Page per section (see `sections`)."""
    try:
        with warnings.catch_warnings():
            # XHTML/iXBRL filings start with <?xml ...?>; the HTML parser is still right.
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            soup = BeautifulSoup(data, "lxml")
        text = render_html(soup)
    except Exception as error:
        raise CorruptFile(
            filename, "could not be read as HTML; save the page again and upload it."
        ) from error
    if not text:
        raise EmptyFile(filename, "contains no readable text (only markup or scripts).")
    return document_of("html", pages_by_heading(text, rendered_headings(text)))


def render_html(soup: BeautifulSoup) -> str:
    """Title line plus the main content region as Markdown-ish text."""
    body_text = _tidy(_render_element(_main_region(soup)))
    title = _title(soup)
    if title and not body_text.lstrip("# ").startswith(title):
        return f"# {title}\n\n{body_text}".strip()
    return body_text


def _title(soup: BeautifulSoup) -> str:
    title_tag = soup.find("title")
    return " ".join(title_tag.get_text(" ").split()) if isinstance(title_tag, Tag) else ""


def _main_region(soup: BeautifulSoup) -> Tag:
    """<main> (or role=main) when the page marks one and it has text, else <body>."""
    main = soup.find("main") or soup.find(role="main")
    if isinstance(main, Tag) and main.get_text(strip=True):
        return main
    body = soup.find("body")
    return body if isinstance(body, Tag) else soup


def _render_element(root: Tag) -> str:
    """Walk the tree iteratively (deeply nested pages would overflow recursion)."""
    pieces: list[str] = []
    stack: list[tuple[PageElement, _Context] | str] = [(root, _Context())]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            pieces.append(item)
            continue
        node, context = item
        if isinstance(node, NavigableString):
            if isinstance(node, PreformattedString):  # comments, doctype, CDATA, PIs
                continue
            # Code blocks keep their line breaks; elsewhere source newlines are just spaces.
            text = str(node) if context.in_preformatted else _SPACES.sub(" ", str(node))
            pieces.append(text)
            continue
        if not isinstance(node, Tag) or _is_skipped(node, context):
            continue
        opening, closing, child_context = _markup_for(node, context)
        pieces.append(opening)
        stack.append(closing)
        stack.extend((child, child_context) for child in reversed(node.contents))
    return "".join(pieces)


def _is_skipped(tag: Tag, context: _Context) -> bool:
    name = tag.name.lower()
    if name in SKIPPED_TAGS and not (context.in_article and name in ARTICLE_SCOPED_TAGS):
        return True
    if tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    if tag.get("role") in SKIPPED_ROLES:
        return True
    style = tag.get("style")
    return isinstance(style, str) and bool(_HIDDEN_STYLE.search(style))


def _markup_for(tag: Tag, context: _Context) -> tuple[str, str, _Context]:
    """Text to emit before and after a tag's children, and the context for the children."""
    name = tag.name.lower()
    if name == "article":
        context = replace(context, in_article=True)
    if context.in_cell:
        # Inside a table cell everything stays on the row's line.
        if name == "tr":
            return "; ", "", context
        if name in BLOCK_TAGS or name in HEADING_LEVELS or name in {"br", "td", "th"}:
            return " ", " ", context
        return "", "", context
    if name in {"td", "th"}:
        return _CELL_MARK, _CELL_MARK, replace(context, in_cell=True)
    if name == "tr":
        return "\n", "", context
    if name == "li":
        return "\n- ", "", replace(context, in_list_item=True)
    if context.in_list_item and name not in {"ul", "ol", "table"}:
        # <li><p>text</p></li>: the paragraph belongs on the bullet's line.
        if name in BLOCK_TAGS or name in HEADING_LEVELS or name == "br":
            return " ", " ", context
        return "", "", context
    if name in {"ul", "ol"}:
        return "\n\n", "\n\n", replace(context, in_list_item=False)
    if name == "pre":
        return "\n\n", "\n\n", replace(context, in_preformatted=True)
    if name in HEADING_LEVELS:
        return f"\n\n{'#' * HEADING_LEVELS[name]} ", "\n\n", context
    if name == "br":
        return "\n", "", context
    if name in BLOCK_TAGS:
        return "\n\n", "\n\n", context
    return "", "", context


def _tidy(raw_text: str) -> str:
    lines = [_tidy_line(line) for line in raw_text.split("\n")]
    lines = [line for line in lines if not _BARE_MARKER.match(line)]
    return _EXTRA_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _tidy_line(line: str) -> str:
    if _CELL_MARK in line:
        cells = [_SPACES.sub(" ", cell).strip() for cell in line.split(_CELL_MARK)]
        # Layout tables are full of empty spacer cells; keep only cells with text.
        return " | ".join(cell for cell in cells if cell)
    return _SPACES.sub(" ", line).strip()
