"""Pages -> chunks, sized in the embedding model's own tokens.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from copilot.knowledge.loaders import Page
from copilot.knowledge.tables import header_above


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    page: int | None
    text: str
    token_count: int
    start: int  # character offset inside its page, for evaluation against answer spans


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], size: int, overlap: int) -> None:
        if not 0 <= overlap < size:
            raise ValueError(f"chunk overlap ({overlap}) must be below the chunk size ({size})")
        self.count_tokens = count_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=overlap,
            length_function=count_tokens,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end",
            strip_whitespace=True,
        )

    def split(self, pages: Sequence[Page]) -> list[ChunkDraft]:
        drafts: list[ChunkDraft] = []
        for page in pages:
            search_from = 0
            for piece in self._splitter.split_text(page.text):
                text = piece.strip()
                if not text:
                    continue
                # Chunks come in page order, so each starts after the previous one's start.
                # (The splitter's own start_index counts the overlap in characters, which
                # is wrong when chunks are measured in tokens.)
                start = page.text.find(text, search_from)
                search_from = max(start + 1, search_from)
                # A chunk that starts inside a table repeats the table's header, so its
                # rows still say which column is which.
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
                    )
                )
        return drafts
