"""PPTX -> one Page per slide (located by its title) with python-pptx.

python-pptx is the maintained, pure-Python reader for OOXML presentations (same author and
lxml base as python-docx). It exposes text frames, tables, grouped shapes and speaker notes,
which is everything on a slide that carries words. Shapes are read top-to-bottom,
left-to-right, because the XML order is z-order, not reading order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE
from pptx.shapes.base import BaseShape
from pptx.slide import Slide

from copilot.knowledge.loaders.document import LoadedDocument, Page, document_of
from copilot.knowledge.loaders.encoding import tidy_extracted_text
from copilot.knowledge.loaders.errors import CorruptFile, EmptyFile


def load_powerpoint(stream: IO[bytes], filename: str) -> LoadedDocument:
    """Slides as pages (numbered from 1); call only after the ZIP passed the bomb check."""
    try:
        presentation = Presentation(stream)
        slides = list(presentation.slides)
    except Exception as error:  # PackageNotFoundError, KeyError, lxml errors, ValueError ...
        raise CorruptFile(
            filename,
            "is damaged or not a valid PowerPoint presentation; open it in PowerPoint, save "
            "it again and upload the new copy.",
        ) from error
    pages: list[Page] = []
    for number, slide in enumerate(slides, start=1):
        try:
            text = tidy_extracted_text(render_slide(slide))
        except Exception as error:
            raise CorruptFile(
                filename,
                f"is damaged: slide {number} could not be read; save it again and "
                "upload the new copy.",
            ) from error
        if text:
            pages.append(Page(number=number, text=text, location=slide_title(slide)))
    if not pages:
        raise EmptyFile(filename, "contains no text on any slide.")
    return document_of("pptx", pages, total_pages=len(slides))


def slide_title(slide: Slide) -> str | None:
    """The text of the slide's title placeholder, on one line; None when it has none."""
    title_shape = slide.shapes.title
    if title_shape is None or not title_shape.has_text_frame:
        return None
    return " ".join(title_shape.text_frame.text.split()) or None


def render_slide(slide: Slide) -> str:
    """Title as a ``#`` line, then shapes in reading order, then speaker notes."""
    blocks: list[str] = []
    title_shape = slide.shapes.title
    title_id = title_shape.shape_id if title_shape is not None else None
    title = slide_title(slide)
    if title:
        blocks.append(f"# {title}")
    body_shapes = [shape for shape in slide.shapes if shape.shape_id != title_id]
    blocks.extend(_render_shapes(body_shapes))
    if slide.has_notes_slide:
        notes_frame = slide.notes_slide.notes_text_frame
        notes = notes_frame.text.strip() if notes_frame is not None else ""
        if notes:
            blocks.append(f"Notes: {notes}")
    return "\n\n".join(blocks)


def _render_shapes(shapes: Iterable[BaseShape]) -> list[str]:
    blocks: list[str] = []
    for shape in sorted(shapes, key=_reading_position):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            blocks.extend(_render_shapes(shape.shapes))  # type: ignore[attr-defined]
        elif shape.has_table:
            table_text = _render_table(shape)
            if table_text:
                blocks.append(table_text)
        elif shape.has_text_frame:
            text = shape.text_frame.text.strip()  # type: ignore[attr-defined]
            if text:
                blocks.append(text)
    return blocks


def _render_table(shape: BaseShape) -> str:
    rows: list[str] = []
    for row in shape.table.rows:  # type: ignore[attr-defined]
        cells = [" ".join(cell.text.split()) for cell in row.cells if not cell.is_spanned]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _reading_position(shape: BaseShape) -> tuple[int, int]:
    return (shape.top or 0, shape.left or 0)
