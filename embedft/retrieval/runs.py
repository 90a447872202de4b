"""Rankings keyed by ids (``Run``): from search results, from stored corpus embeddings, and fused."""

from __future__ import annotations

import numpy as np

from embedft.encoding import StoredEmbeddings
from embedft.retrieval.exact import exact_search, normalise_rows

Run = dict[str, dict[str, float]]
"""A ranking: query id -> document id -> score."""


def to_run(query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray) -> Run:
    """Turn search results into a ``Run`` keyed by ids."""
    return {
        query_id: {doc_ids[i]: float(s) for i, s in zip(indices[row], scores[row])}
        for row, query_id in enumerate(query_ids)
    }


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


def rank_corpus(
    query_ids: list[str],
    query_vectors: np.ndarray,
    corpus: StoredEmbeddings,
    top_k: int,
    chunk_size: int = 50_000,
    dim: int | None = None,
) -> Run:
    """Rank the stored corpus for each query vector, optionally truncated to the first ``dim`` dimensions.

    Truncated vectors are re-normalised, as a Matryoshka model's prefixes are used in practice.
    """
    corpus_vectors = corpus.vectors
    if dim is not None:
        query_vectors, corpus_vectors = normalise_rows(query_vectors[:, :dim]), normalise_rows(corpus_vectors[:, :dim])
    indices, scores = exact_search(query_vectors, corpus_vectors, top_k, chunk_size)
    return to_run(query_ids, corpus.doc_ids, indices, scores)
