"""The embedded keyword index scores adjacent question words found together above the same
words scattered (a bigram phrase boost), and matches the same chunks as before."""

from __future__ import annotations

from pathlib import Path

from copilot.search.keyword_embedded import EmbeddedKeywordIndex, query_pairs
from copilot.search.scope import AccessScope
from tests.search.test_embedded_indexes import chunk, company, ids

SCOPE = AccessScope("alice", None, frozenset({"public"}))


def test_query_pairs_are_adjacent_index_terms() -> None:
    # Each clause's terms in order (stop words gone, stemmed); a pair counts once.
    assert query_pairs(["what", "incub", "period", "incub", "period"]) == [
        ("what", "incub"),
        ("incub", "period"),
        ("period", "incub"),
    ]
    assert query_pairs(["virus"]) == []


async def test_words_found_together_rank_first(tmp_path: Path) -> None:
    index = EmbeddedKeywordIndex(tmp_path / "keyword")
    try:
        # Same words, same length: BM25 alone ties them. Only the first has the phrase.
        await index.add(
            [
                chunk("scattered", "period of time before the incubation of the eggs", company()),
                chunk("together", "the incubation period of time before the eggs", company()),
                chunk("other", "a chunk about something else entirely here", company()),
            ]
        )
        hits = await index.search("How long is the incubation period?", SCOPE, 10)
        assert ids(hits) == ["together", "scattered"]
        assert hits[0].score > hits[1].score
    finally:
        await index.close()
