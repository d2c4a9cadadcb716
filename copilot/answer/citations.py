"""Citations: which numbered sources an answer actually cites, and what to store of them."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.documents import Document

_CITATION = re.compile(r"\[(\d{1,3})(?:\s*,\s*(\d{1,3}))*\]")
_NUMBER = re.compile(r"\d{1,3}")


def cited_numbers(text: str, source_count: int) -> list[int]:
    """Source numbers cited in `text`, in order of first citation; out-of-range ones dropped."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for number in map(int, _NUMBER.findall(match.group(0))):
            if 1 <= number <= source_count and number not in seen:
                seen.append(number)
    return seen


def source_record(number: int, document: Document, cited: bool) -> dict[str, Any]:
    """What a message stores about one source (JSON): enough to show and audit it later."""
    metadata = document.metadata
    return {
        "number": number,
        "cited": cited,
        "chunk_id": metadata.get("chunk_id"),
        "file_id": metadata.get("file_id"),
        "file_name": metadata.get("file_name"),
        "page": metadata.get("page"),
        "score": metadata.get("fused_score"),
        "snippet": document.page_content[:1000],
    }
