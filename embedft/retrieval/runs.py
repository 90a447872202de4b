"""Rankings keyed by ids (``Run``): from search results and from stored corpus embeddings."""

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
