"""Pages -> chunks, sized in the embedding model's own tokens.

LangChain's RecursiveCharacterTextSplitter measured with the model's tokenizer splits at
paragraphs, then lines, then sentences, then words, so chunks end at natural boundaries and
never exceed what the model reads (all-MiniLM-L6-v2 truncates after 256 word pieces).
Each page is split on its own so every chunk keeps the page it came from.

Default 256 tokens with 32 of overlap: the most the model reads in one piece. Measured on
COVID-QA (`copilot bench retrieval`, 3,018 chunks): BM25 nDCG@10 0.661 against 0.631 for
1,000-character chunks with 200 of overlap (../shared/ENVIRONMENT.md). Smaller sizes are
still to be measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from copilot.knowledge.loaders import Page


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
