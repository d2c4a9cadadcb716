"""Pages -> chunks, sized in characters and in the embedding model's own tokens.

LangChain's RecursiveCharacterTextSplitter measured with the model's tokenizer splits at
paragraphs, then lines, then sentences, then words, so chunks end at natural boundaries and
never exceed what the model reads (all-MiniLM-L6-v2 truncates after 256 word pieces).
Each page is split on its own so every chunk keeps the page it came from, and a chunk that
starts inside a pipe table (Markdown, DOCX) gets the table's header line(s) in front.

Default 128 tokens with 16 of overlap, measured on COVID-QA (`copilot bench retrieval`,
98 papers, all 1,380 questions, weights 0.8 / 0.2 and c=60 for the ensemble rows; latency
p50 / p95 in ms, measured with three of these benches and other jobs sharing the 2 cores,
load average 7-10, so only the quality columns compare):

    size/overlap  chunks  retriever  nDCG@10  MRR@10   R@1   R@5  R@10  R@50  R@5kc  p50  p95
    128 / 16       5,930  keyword      0.613   0.568 0.475 0.698 0.762 0.880  0.772    3   24
                          vector       0.453   0.397 0.292 0.536 0.634 0.778  0.653  118  360
                          ensemble     0.617   0.565 0.464 0.704 0.786 0.881  0.802   98  171
    256 / 32       3,018  keyword      0.661   0.614 0.519 0.746 0.814 0.922  0.756    4   13
                          vector       0.432   0.375 0.270 0.514 0.621 0.793  0.546   93  226
                          ensemble     0.647   0.592 0.481 0.749 0.826 0.922  0.764   90  155
    384 / 48       2,011  keyword      0.668   0.621 0.522 0.749 0.819 0.929  0.702    3   10
                          vector       0.425   0.370 0.259 0.515 0.607 0.773  0.472   84  163
                          ensemble     0.639   0.583 0.470 0.734 0.818 0.930  0.671   91  152

The rank columns do not compare sizes fairly: a chunk is relevant when it holds the
answer's start, so a 384-token chunk is three times as likely to hold it as a 128-token
one, and ten of them are three times the text. R@5kc fixes the text instead: the share of
questions whose answer is reached within the first 5,000 characters of the ranking, about
what the answer is handed (`COPILOT_RETRIEVAL_K` 12 chunks of ~390 characters). There 128
tokens win for every retriever: keyword 0.772 / 0.756 / 0.702, vector 0.653 / 0.546 /
0.472. Smaller chunks suit the vector model most (one idea per vector; it was trained on
sentences, and it reads only the first 256 word pieces, so 384-token chunks lose a third
of their text to it). With 128-token chunks the fused rankings also beat BM25: weights
0.6 / 0.4 with c=1, picked on half the questions, give nDCG@10 0.644 against BM25's
0.622 on the other half (0.638 against 0.613 on all; see `copilot/search/ensemble.py`).

Characters as well as tokens: 128 MiniLM word pieces are 549 characters of COVID-QA's
English but 365 of German, 380 of the French fixture and 335 of Vietnamese, so a token
budget alone cuts such text into 1.4-1.6x more, smaller chunks. A chunk is therefore cut
at `COPILOT_CHUNK_CHARS` (550) characters or at `COPILOT_CHUNK_MAX_TOKENS` (256, what the
model reads) tokens, whichever comes first. Measured with the model's tokenizer (chunks,
mean characters, mean / max tokens), tokens alone (128 / 16) against both bounds:

    text                          tokens alone          characters and tokens
    COVID-QA, 20 papers           1,028  392  91 / 128  1,027  390  91 / 200
    French PDF fixture, 12 pages    109  322 109 / 128     78  453 153 / 230

English is cut as before; the French paper into 28% fewer, 41% longer chunks. On the
hand-made fixture set (tests/bench/data, 22 of its 27 questions French) this raised
keyword nDCG@10 from 0.787 to 0.850 and vector from 0.449 to 0.569; rank cut-offs favour
longer chunks (above); R@5kc, which fixes the text, went from 0.963 to 1.0 for keyword
and stayed 0.778 for vector (README has the tables).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from copilot.knowledge.loaders import Page
from copilot.knowledge.loaders.csv_rows import row_range
from copilot.knowledge.tables import header_above
from copilot.search.language import detect_language


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    page: int | None
    text: str
    token_count: int
    start: int  # character offset inside its page, for evaluation against answer spans
    location: str | None = None  # heading path, slide title or row range (see `Page`)
    language: str | None = None  # ISO 639-1 code of the text, when detected


class Chunker:
    """Cuts pages into chunks of `size` tokens of English: `chars` characters, or at most
    `max_tokens` model tokens, whichever comes first, overlapping by `overlap` (in the same
    English-token units). Each chunk is tagged with its language (`detect_language`).

    The splitter measures a text as the larger of its characters and its tokens, each
    scaled to `size`: English prose has about `chars` characters in `size` tokens, so it is
    cut as by tokens alone, while German or Vietnamese (cut into more word pieces per
    character) are cut by characters, up to the model's hard cap in tokens. `chars=None`
    and `max_tokens=size` measure in tokens alone.
    """

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        size: int,
        overlap: int,
        *,
        chars: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if not 0 <= overlap < size:
            raise ValueError(f"chunk overlap ({overlap}) must be below the chunk size ({size})")
        max_tokens = size if max_tokens is None else max_tokens
        if max_tokens < size:
            raise ValueError(
                f"most tokens in a chunk ({max_tokens}) must be at least its size ({size})"
            )
        self.count_tokens = count_tokens

        def length(text: str) -> int:
            tokens = count_tokens(text)
            by_tokens = -(-tokens * size // max_tokens)  # ceiling division
            by_chars = -(-len(text) * size // chars) if chars else tokens
            return max(by_tokens, by_chars)

        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=overlap,
            length_function=length,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end",
            strip_whitespace=True,
        )

    def split(self, pages: Sequence[Page]) -> list[ChunkDraft]:
        drafts: list[ChunkDraft] = []
        for page in pages:
            search_from = 0
            for text in _headings_lead(page.text, self._splitter.split_text(page.text)):
                # Chunks come in page order, so each starts after the previous one's start.
                # (The splitter's own start_index counts the overlap in characters, which
                # is wrong when chunks are measured in tokens.)
                start = page.text.find(text, search_from)
                search_from = max(start + 1, search_from)
                # A chunk that starts inside a table repeats the table's header, so its
                # rows still say which column is which.
                location = _location(page, start, text)  # of the page's own text
                header = header_above(page.text, start)
                if header is not None:
                    text = f"{header}\n{text}"
                drafts.append(
                    ChunkDraft(
                        ordinal=len(drafts),
                        page=page.number,
                        text=text,
                        token_count=self.count_tokens(text),
                        start=start,
                        location=location,
                        language=detect_language(text),
                    )
                )
        return drafts


_HEADING_LINE = re.compile(r"^#{1,6} ")


def _headings_lead(text: str, pieces: list[str]) -> list[str]:
    """Pieces of ``text``, stripped, with a piece of nothing but headings joined to the next.

    The splitter cuts at blank lines, so a section's headings end up alone when its first
    paragraph does not fit beside them; such a chunk says nothing and only matches its
    heading words. (A heading that the overlap already repeats is dropped.)
    """
    stripped = [piece.strip() for piece in pieces if piece.strip()]
    kept: list[str] = []
    search_from = 0
    for index, piece in enumerate(stripped):
        start = text.find(piece, search_from)
        search_from = max(start, search_from)
        following = stripped[index + 1] if index + 1 < len(stripped) else None
        is_headings = all(_HEADING_LINE.match(line) for line in piece.split("\n") if line.strip())
        if following is None or not is_headings or start < 0:
            kept.append(piece)
        elif piece not in following:
            following_start = text.find(following, start + len(piece))
            if following_start < 0:
                kept.append(piece)
            else:
                stripped[index + 1] = text[start : following_start + len(following)]
    return kept


def _location(page: Page, start: int, text: str) -> str | None:
    """The page's location, narrowed to the rows a chunk holds when lines are rows (CSV)."""
    if page.line_rows is None or start < 0:
        return page.location
    first = page.text.count("\n", 0, start)
    last = min(first + text.count("\n"), len(page.line_rows) - 1)
    return row_range(page.line_rows[first], page.line_rows[last])
