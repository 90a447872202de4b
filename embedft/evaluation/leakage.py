"""Train/test leakage check: test queries that also appear among the training anchors."""

from __future__ import annotations

import numpy as np

from embedft.core import normalise_query
from embedft.retrieval import exact_search


def count_leaks(
    test_queries: dict[str, str],
    anchors: list[str],
    test_vectors: np.ndarray,
    anchor_vectors: np.ndarray,
    similarity: float,
) -> tuple[dict[str, int], list[str]]:
    """Count test queries found in training: verbatim, after normalisation, or as near-duplicates.

    Args:
        test_queries: id -> text, in the order of ``test_vectors``' rows (sorted ids).
        anchors: training anchors, in the order of ``anchor_vectors``' rows.
        test_vectors: unit-norm test query vectors.
        anchor_vectors: unit-norm anchor vectors (same model).
        similarity: cosine at or above which a pair counts as a near-duplicate.

    Returns:
        counts for each kind (each includes the stricter ones), and the near-duplicate query ids.
    """
    exact_set = set(anchors)
    normalised_set = {normalise_query(a) for a in anchors}
    ids = sorted(test_queries)
    exact = [q for q in ids if test_queries[q] in exact_set]
    normalised = [q for q in ids if normalise_query(test_queries[q]) in normalised_set]
    near: list[str] = []
    if len(anchors) and len(ids):
        _, scores = exact_search(test_vectors, anchor_vectors, top_k=1)
        near = [q for q, s in zip(ids, scores[:, 0]) if s >= similarity - 1e-6 or q in normalised]
    return {"exact": len(exact), "normalised": len(normalised), "near_duplicate": len(near)}, near
