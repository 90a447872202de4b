"""BM25 retrieval with the bm25s library: the lexical baseline every dense model must beat, and a miner of
hard negatives that share the query's words."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import bm25s
import numpy as np

from embedft.config import Bm25Params
from embedft.core import PipelineError
from embedft.retrieval.runs import Run

ENGLISH = Bm25Params()
"""The default reading: English stop words, no stemmer."""


def stemmer_for(settings: Bm25Params) -> Callable[[list[str]], list[str]] | None:
    """PyStemmer's Snowball stemmer for ``settings.language`` when ``settings.stemmer`` is on, else None.

    Raises:
        PipelineError: the stemmer is asked for and PyStemmer is not installed.
    """
    if settings.stemmer_algorithm is None:
        return None
    try:
        import Stemmer
    except ImportError:
        raise PipelineError("bm25.stemmer: true needs the PyStemmer package: pip install PyStemmer "
                            "(or set bm25.stemmer: false)") from None
    return Stemmer.Stemmer(settings.stemmer_algorithm).stemWords


def bm25_search(doc_texts: Sequence[str], query_texts: list[str], top_k: int,
                settings: Bm25Params = ENGLISH) -> tuple[np.ndarray, np.ndarray]:
    """Rank the corpus for each query with BM25 (default k1/b).

    Args:
        settings: the ``bm25`` params: whose stop words are removed (``language``; default English) and whether
            words are stemmed, the same way in documents and queries.

    Returns:
        (indices, scores) of shape (n_queries, min(top_k, n_docs)), best first with ties by corpus position.
        Documents sharing no term with the query score 0 and are not results: their places hold index -1.
    """
    top_k = min(top_k, len(doc_texts))
    if not query_texts or top_k == 0:
        return np.zeros((len(query_texts), top_k), dtype=np.int64), np.zeros((len(query_texts), top_k), dtype=np.float32)
    tokenize = partial(bm25s.tokenize, stopwords=None if settings.language == "none" else settings.language,
                       stemmer=stemmer_for(settings), show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokenize(list(doc_texts)), show_progress=False)
    tokens = tokenize(query_texts)
    indices, scores = retriever.retrieve(tokens, k=top_k, show_progress=False, n_threads=1)
    indices = np.where(scores > 0, indices, -1).astype(np.int64)
    scores = np.where(indices >= 0, scores, 0.0).astype(np.float32)
    order = np.lexsort((np.where(indices < 0, np.iinfo(np.int64).max, indices), -scores), axis=1)
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(scores, order, axis=1)


def bm25_run(doc_ids: list[str], doc_texts: list[str], query_ids: list[str], query_texts: list[str], top_k: int,
             settings: Bm25Params = ENGLISH) -> Run:
    """Rank the corpus for each query with BM25, as a ``Run`` keyed by ids (documents scoring 0 left out); ``settings``
    as in :func:`bm25_search`."""
    if not query_ids:
        return {}
    indices, scores = bm25_search(doc_texts, query_texts, top_k, settings)
    return {
        query_id: {doc_ids[int(i)]: float(s) for i, s in zip(indices[row], scores[row]) if i >= 0}
        for row, query_id in enumerate(query_ids)
    }
