"""BM25 retrieval with the bm25s library: the lexical baseline every dense model must beat, and a miner of
hard negatives that share the query's words."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np

from embedft.retrieval.runs import Run


def bm25_search(doc_texts: Sequence[str], query_texts: list[str], top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank the corpus for each query with BM25 (English stop words removed, default k1/b).

    Returns:
        (indices, scores) of shape (n_queries, min(top_k, n_docs)), best first with ties by corpus position.
        Documents sharing no term with the query score 0 and are not results: their places hold index -1.
    """
    top_k = min(top_k, len(doc_texts))
    if not query_texts or top_k == 0:
        return np.zeros((len(query_texts), top_k), dtype=np.int64), np.zeros((len(query_texts), top_k), dtype=np.float32)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(doc_texts), stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(query_texts, stopwords="en", show_progress=False)
    indices, scores = retriever.retrieve(tokens, k=top_k, show_progress=False, n_threads=1)
    indices = np.where(scores > 0, indices, -1).astype(np.int64)
    scores = np.where(indices >= 0, scores, 0.0).astype(np.float32)
    order = np.lexsort((np.where(indices < 0, np.iinfo(np.int64).max, indices), -scores), axis=1)
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(scores, order, axis=1)


def bm25_run(doc_ids: list[str], doc_texts: list[str], query_ids: list[str], query_texts: list[str], top_k: int) -> Run:
    """Rank the corpus for each query with BM25, as a ``Run`` keyed by ids (documents scoring 0 left out)."""
    if not query_ids:
        return {}
    indices, scores = bm25_search(doc_texts, query_texts, top_k)
    return {
        query_id: {doc_ids[int(i)]: float(s) for i, s in zip(indices[row], scores[row]) if i >= 0}
        for row, query_id in enumerate(query_ids)
    }
