"""Fusion: RRF as LangChain computes it, convex combination of normalised scores, and
weights chosen by the question's language so a language the vector model cannot read is
ranked by keyword search."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from langchain_classic.retrievers import EnsembleRetriever
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.search.ensemble import FusionWeights, ScoredEnsembleRetriever
from copilot.search.fusion import convex_scores, normalised, reciprocal_rank_scores
from tests.conftest import People

KEYWORD = [("a", 12.0), ("b", 11.5), ("c", 3.0), ("d", 2.0)]
VECTOR = [("d", 0.91), ("e", 0.60), ("a", 0.55)]


def docs(hits: list[tuple[str, float]], name: str) -> list[Document]:
    return [
        Document(page_content=i, metadata={"chunk_id": i, f"{name}_score": s, f"{name}_rank": r})
        for r, (i, s) in enumerate(hits, 1)
    ]


def ensemble(
    fusion: str, weights: list[float], normalisation: str = "zscore", **kwargs: object
) -> ScoredEnsembleRetriever:
    idle: RunnableLambda[str, list[Document]] = RunnableLambda(lambda _: [])
    return ScoredEnsembleRetriever(
        retrievers=[idle, idle],
        weights=weights,
        id_key="chunk_id",
        top_k=100,
        fusion=fusion,  # type: ignore[arg-type]
        normalisation=normalisation,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def fused(retriever: ScoredEnsembleRetriever) -> list[str]:
    lists = [docs(KEYWORD, "keyword"), docs(VECTOR, "vector")]
    return [d.metadata["chunk_id"] for d in retriever.weighted_reciprocal_rank(lists)]


@pytest.mark.parametrize(("weights", "c"), [([0.8, 0.2], 60), ([0.5, 0.5], 1), ([0.3, 0.7], 10)])
def test_rrf_is_langchains_order_and_score(weights: list[float], c: int) -> None:
    idle: RunnableLambda[str, list[Document]] = RunnableLambda(lambda _: [])
    plain = EnsembleRetriever(retrievers=[idle, idle], weights=weights, c=c, id_key="chunk_id")
    lists = [docs(KEYWORD, "keyword"), docs(VECTOR, "vector")]
    expected = [d.metadata["chunk_id"] for d in plain.weighted_reciprocal_rank(lists)]
    ours = ensemble("rrf", weights, c=c).weighted_reciprocal_rank(lists)
    assert [d.metadata["chunk_id"] for d in ours] == expected
    scores = reciprocal_rank_scores([["a", "b", "c", "d"], ["d", "e", "a"]], weights, c)
    assert ours[0].metadata["fused_score"] == pytest.approx(scores[expected[0]])
    assert scores["a"] == pytest.approx(weights[0] / (1 + c) + weights[1] / (3 + c))


def test_normalisations() -> None:
    assert normalised([12.0, 11.5, 3.0, 2.0], "minmax") == pytest.approx([1.0, 0.95, 0.1, 0.0])
    z = normalised([3.0, 1.0, 2.0], "zscore")
    assert z == pytest.approx([1.2247, -1.2247, 0.0], abs=1e-4)
    assert normalised([5.0, 5.0], "minmax") == [1.0, 1.0]
    assert normalised([5.0, 5.0], "zscore") == [0.0, 0.0]
    assert normalised([], "zscore") == []
    with pytest.raises(ValueError, match="unknown score normalisation 'rank'"):
        normalised([1.0], "rank")  # type: ignore[arg-type]


def test_convex_keeps_score_gaps_that_rrf_loses() -> None:
    # Keyword's a and b are nearly tied, c far behind; the vector model ranks d first and
    # its e is barely above its worst hit.
    scores = convex_scores([KEYWORD, VECTOR], [0.45, 0.55], "minmax")
    # b: 0.45 * 0.95 + 0.55 * 0 (missing from the vector list: that list's floor, 0)
    assert scores["b"] == pytest.approx(0.4275)
    # e: keyword floor 0 + 0.55 * (0.60 - 0.55) / (0.91 - 0.55)
    assert scores["e"] == pytest.approx(0.55 * 0.05 / 0.36)
    assert fused(ensemble("convex", [0.45, 0.55], normalisation="minmax")) == [
        "d",
        "a",
        "b",
        "e",
        "c",
    ]
    # RRF sees ranks only: e (0.55 / 3) passes b (0.45 / 3).
    assert fused(ensemble("rrf", [0.45, 0.55], c=1)) == ["d", "a", "e", "b", "c"]


def test_convex_weights_decide_and_metadata_is_kept() -> None:
    keyword_led = fused(ensemble("convex", [0.9, 0.1], normalisation="zscore"))
    vector_led = fused(ensemble("convex", [0.1, 0.9], normalisation="zscore"))
    assert keyword_led[:2] == ["a", "b"]
    assert vector_led[0] == "d"
    top = ensemble("convex", [0.6, 0.4]).weighted_reciprocal_rank(
        [docs(KEYWORD, "keyword"), docs(VECTOR, "vector")]
    )
    a = next(d for d in top if d.metadata["chunk_id"] == "a")
    assert (a.metadata["keyword_rank"], a.metadata["vector_rank"]) == (1, 3)
    assert (a.metadata["keyword_score"], a.metadata["vector_score"]) == (12.0, 0.55)
    assert [d.metadata["fused_score"] for d in top] == sorted(
        (d.metadata["fused_score"] for d in top), reverse=True
    )


def test_weight_zero_ranks_exactly_as_the_first_list_then_the_rest() -> None:
    for fusion in ("rrf", "convex"):
        assert fused(ensemble(fusion, [0.6, 0.0], c=1)) == ["a", "b", "c", "d", "e"]


def test_unknown_fusion_and_mismatched_weights_are_named() -> None:
    with pytest.raises(ValueError, match="unknown fusion 'borda'"):
        fused(ensemble("rrf", [0.5, 0.5]).model_copy(update={"fusion": "borda"}))
    with pytest.raises(ValueError, match="2 rankings but 3 weights"):
        convex_scores([KEYWORD, VECTOR], [0.3, 0.3, 0.4], "zscore")


def test_weights_follow_the_question_language() -> None:
    weights = FusionWeights(0.6, 0.4, frozenset({"en"}), 0.0)
    assert weights.for_language("en") == weights.for_language("EN") == (0.6, 0.4)
    assert weights.for_language(None) == (0.6, 0.4)  # not detected: the measured default
    assert weights.for_language("de") == weights.for_language("vi") == (0.6, 0.0)


DOCUMENTS = [
    "Der Jahresabschluss zum Geschäftsjahr 2020 wurde vom Vorstand aufgestellt und vom "
    "Aufsichtsrat geprüft.",
    "Im Jahresabschluss 2020 sind die Rückstellungen für Pensionen gestiegen; der Prüfer hat "
    "2020 keine Einwände erhoben.",
    "Geprüft wurde auch die Reisekostenabrechnung: Hotelkosten bis 150 Euro pro Nacht.",
    "The annual financial statements for fiscal year 2020 were audited by the supervisory board.",
    "Die Kantine ist montags bis freitags von zwölf bis vierzehn Uhr geöffnet.",
]


async def test_a_language_the_vector_model_cannot_read_ranks_as_keyword_alone(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    ownership = Ownership(uuid.UUID(people.admin.user_id), scope="company")
    for number, text in enumerate(DOCUMENTS):
        path = tmp_path / f"doc-{number}.txt"
        path.write_text(text, encoding="utf-8")
        assert (await ingest_file(kb, path, ownership)).outcome == "indexed"
    question = "Wer hat den Jahresabschluss 2020 geprüft?"
    scope = people.admin.scope
    keyword = [h.chunk_id for h in await kb.indexes.keyword.search(question, scope, 30)]
    assert len(keyword) == 4  # every chunk but the canteen's

    def ids(documents: list[Document]) -> list[str]:
        return [d.metadata["chunk_id"] for d in documents]

    german, _ = await kb.search.search(question, scope, k=5, language="de")
    assert ids(german)[:4] == keyword
    assert len(german) == 5  # the vector's other hit (the canteen) follows the keyword ranking
    # Read as English, the vector model's weight lifts the canteen above a keyword hit.
    as_english, _ = await kb.search.search(question, scope, k=5, language="en")
    assert ids(as_english)[:4] != keyword
    # Not told the language, search detects it from the question.
    detected, _ = await kb.search.search(question, scope, k=5)
    assert ids(detected) == ids(german)
