"""Reranking a ranking's top documents with a pair scorer (a cross-encoder), keeping the rest below them."""

from __future__ import annotations

from collections.abc import Callable

from embedft.retrieval.runs import Run


def rerank(run: Run, queries: dict[str, str], documents: dict[str, str],
           score_pairs: Callable[[list[tuple[str, str]]], list[float]], top_k: int) -> Run:
    """Reorder each query's first ``top_k`` documents by ``score_pairs``; the documents below keep their order.

    All pairs are scored in one call (a cross-encoder batches them). The result's scores are rank scores
    (length of the list down to 1), because the cross-encoder's scores and the first system's are on different
    scales and must not be mixed; ties in the cross-encoder's score keep the first system's order.

    Args:
        run: the first system's ranking (query id -> document id -> score).
        queries: query id -> text.
        documents: document id -> the text the scorer reads (title and text).
        score_pairs: (query text, document text) pairs -> one relevance score each, higher is better.
        top_k: documents per query to rerank.
    """
    ranked = {q: sorted(docs, key=lambda d: (-docs[d], d)) for q, docs in run.items()}
    pairs = [(queries[q], documents[d]) for q in sorted(ranked) for d in ranked[q][:top_k]]
    scores = iter(score_pairs(pairs))
    reranked: Run = {}
    for query_id in sorted(ranked):
        head = ranked[query_id][:top_k]
        by_score = {doc_id: next(scores) for doc_id in head}
        order = sorted(head, key=lambda d: -by_score[d]) + ranked[query_id][top_k:]  # a stable sort keeps ties in order
        reranked[query_id] = {doc_id: float(len(order) - rank) for rank, doc_id in enumerate(order)}
    return reranked
