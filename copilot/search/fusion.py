"""Fusion functions: how the keyword and the vector ranking become one.

Two families, compared by `copilot bench retrieval --sweep` (Bruch et al. 2023, "An Analysis
of Fusion Functions for Hybrid Retrieval"):

* weighted reciprocal rank fusion (RRF): score = sum of weight / (rank + c). Only ranks
  count, so a retriever's confident first hit weighs the same as a near tie.
* convex combination: score = sum of weight * normalised engine score. Scores keep how far
  apart hits are. BM25 and cosine live on different scales, so each list is normalised
  first, over the hits it returned: min-max (best 1, worst 0) or z-score (mean 0, sd 1).
  A chunk one retriever did not return gets that list's lowest normalised score (it is at
  best as good as its worst hit).

Each function returns a score per id; the caller orders by it (stable, so ties keep the
order in which ids first appeared, as LangChain's `EnsembleRetriever` does).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

FusionMethod = Literal["rrf", "convex"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("rrf", "convex")
Normalisation = Literal["minmax", "zscore"]
NORMALISATIONS: tuple[Normalisation, ...] = ("minmax", "zscore")

#: One retriever's hits, best first: (id, engine score, higher is better).
ScoredList = Sequence[tuple[str, float]]


def reciprocal_rank_scores(
    lists: Sequence[Sequence[str]], weights: Sequence[float], c: float
) -> dict[str, float]:
    """Weighted RRF, exactly LangChain's `EnsembleRetriever.weighted_reciprocal_rank`."""
    _check_weights(lists, weights)
    scores: dict[str, float] = {}
    for ids, weight in zip(lists, weights, strict=True):
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (rank + c)
    return scores


def normalised(scores: Sequence[float], normalisation: Normalisation) -> list[float]:
    """One list's scores on a common scale. A list of equal scores maps to all 1 (min-max)
    or all 0 (z-score): it says nothing about which of its hits is better."""
    if not scores:
        return []
    if normalisation == "minmax":
        low, high = min(scores), max(scores)
        if high == low:
            return [1.0] * len(scores)
        return [(s - low) / (high - low) for s in scores]
    if normalisation == "zscore":
        mean, spread = statistics.fmean(scores), statistics.pstdev(scores)
        if spread == 0:
            return [0.0] * len(scores)
        return [(s - mean) / spread for s in scores]
    raise ValueError(f"unknown score normalisation {normalisation!r}: use one of {NORMALISATIONS}")


def convex_scores(
    lists: Sequence[ScoredList], weights: Sequence[float], normalisation: Normalisation
) -> dict[str, float]:
    """Convex combination of each list's normalised scores (weights need not sum to 1:
    only their ratio changes the order)."""
    _check_weights(lists, weights)
    every_id = dict.fromkeys(item for hits in lists for item, _ in hits)
    scores = dict.fromkeys(every_id, 0.0)
    for hits, weight in zip(lists, weights, strict=True):
        values = normalised([score for _, score in hits], normalisation)
        by_id = dict(zip((item for item, _ in hits), values, strict=True))
        floor = min(values, default=0.0)
        for item in every_id:
            scores[item] += weight * by_id.get(item, floor)
    return scores


def _check_weights(lists: Sequence[object], weights: Sequence[float]) -> None:
    if len(lists) != len(weights):
        raise ValueError(f"{len(lists)} rankings but {len(weights)} weights: give one each")
