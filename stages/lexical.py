"""BM25 retrieval with the bm25s library: the lexical baseline every dense model must beat."""

from __future__ import annotations

import bm25s

from stages.retrieval import Run


def bm25_run(doc_ids: list[str], doc_texts: list[str], query_ids: list[str], query_texts: list[str], top_k: int) -> Run:
    """Rank the corpus for each query with BM25 (English stop words removed, default k1/b)."""
    if not query_ids:
        return {}
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(doc_texts, stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(query_texts, stopwords="en", show_progress=False)
    indices, scores = retriever.retrieve(tokens, k=min(top_k, len(doc_ids)), show_progress=False, n_threads=1)
    return {
        query_id: {doc_ids[int(i)]: float(s) for i, s in zip(indices[row], scores[row]) if s > 0}
        for row, query_id in enumerate(query_ids)
    }
