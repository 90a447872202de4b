"""Fusing two rankings of the same queries: reciprocal rank fusion, and a convex combination of per-query
normalised scores (the weighted hybrid, whose weight `tune_hybrid` chooses on dev)."""

from __future__ import annotations

import math

from embedft.config import SCORE_NORMALISATIONS
from embedft.retrieval.runs import Run


def reciprocal_rank_fusion(runs: list[Run], top_k: int, k: int = 60) -> Run:
    """Fuse rankings by summing 1 / (k + rank) over the runs (Cormack et al., 2009)."""
    fused: Run = {}
    for query_id in sorted({q for run in runs for q in run}):
        totals: dict[str, float] = {}
        for run in runs:
            ranked = sorted(run.get(query_id, {}).items(), key=lambda item: (-item[1], item[0]))
            for rank, (doc_id, _) in enumerate(ranked, start=1):
                totals[doc_id] = totals.get(doc_id, 0.0) + 1.0 / (k + rank)
        best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top_k]
        fused[query_id] = dict(best)
    return fused


def normalise_scores(scores: dict[str, float], normalisation: str) -> dict[str, float]:
    """One query's retrieved scores on a common scale (see :data:`SCORE_NORMALISATIONS`).

    Args:
        scores: document id -> raw score, as one system retrieved them for one query.
        normalisation: 'min_max' (0..1; a list whose scores are all equal maps to 1.0, as every document in it
            is that system's best) or 'z_score' (mean 0, standard deviation 1; all equal maps to 0.0).
    """
    if normalisation not in SCORE_NORMALISATIONS:
        raise ValueError(f"unknown score normalisation '{normalisation}' (expected one of {', '.join(SCORE_NORMALISATIONS)})")
    if not scores:
        return {}
    values = list(scores.values())
    if normalisation == "min_max":
        low, high = min(values), max(values)
        if high - low <= 0:
            return dict.fromkeys(scores, 1.0)
        return {doc: (s - low) / (high - low) for doc, s in scores.items()}
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((s - mean) ** 2 for s in values) / len(values))
    if spread <= 0:
        return dict.fromkeys(scores, 0.0)
    return {doc: (s - mean) / spread for doc, s in scores.items()}


def weighted_fusion(dense: Run, lexical: Run, weight: float, normalisation: str, top_k: int) -> Run:
    """Mix two systems' normalised scores per query: ``weight * dense + (1 - weight) * lexical``.

    A document that only one system retrieved gets, from the other, that system's lowest normalised score for
    the query (as bad as the worst it retrieved; 0 for min-max), or 0 when that system retrieved nothing. Equal
    fused scores are ordered by the heavier-weighted system's normalised score (a document it did not retrieve
    last), then the other's, then the document id; so weight 1 ranks exactly as ``dense`` and weight 0 as
    ``lexical`` (each system's own ties by document id).

    Args:
        dense: the dense model's ranking (query id -> document id -> score).
        lexical: BM25's ranking of the same queries.
        weight: the dense model's share, 0..1.
        normalisation: a key of :data:`SCORE_NORMALISATIONS`.
        top_k: documents kept per query.

    Returns:
        the fused ranking, each query's documents in rank order with their fused scores.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the dense weight must lie in 0..1, got {weight}")
    fused: Run = {}
    for query_id in sorted(set(dense) | set(lexical)):
        first = normalise_scores(dense.get(query_id, {}), normalisation)
        second = normalise_scores(lexical.get(query_id, {}), normalisation)
        floor_first, floor_second = min(first.values(), default=0.0), min(second.values(), default=0.0)
        heavy, light = (first, second) if weight >= 0.5 else (second, first)
        total = {doc_id: weight * first.get(doc_id, floor_first) + (1.0 - weight) * second.get(doc_id, floor_second)
                 for doc_id in first.keys() | second.keys()}
        ranked = sorted(total, key=lambda d: (-total[d], -heavy.get(d, -math.inf), -light.get(d, -math.inf), d))
        fused[query_id] = {doc_id: total[doc_id] for doc_id in ranked[:top_k]}
    return fused
