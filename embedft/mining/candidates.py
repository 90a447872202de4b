"""Candidates for hard negatives: each anchor's rank window from the dense, BM25 or hybrid retriever, with
the dense scores the false-negative filters compare, and the dense vectors of the pairs' positives."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from embedft.config import Bm25Params, MineNegativesParams
from embedft.core import Pair, PipelineError
from embedft.encoding import StoredEmbeddings
from embedft.mining.search_backend import search
from embedft.mining.selection import Window
from embedft.retrieval import bm25_search, reciprocal_rank_fusion

logger = logging.getLogger(__name__)


def window_end(settings: MineNegativesParams, corpus_size: int) -> int:
    """``range_max``, reduced (with a warning) to the corpus size; an empty window is an error."""
    if settings.range_min >= corpus_size:
        raise PipelineError(f"params.yaml: mine_negatives.range_min is {settings.range_min}, but the corpus has only "
                            f"{corpus_size} documents; lower it")
    if settings.range_max > corpus_size:
        logger.warning("mine_negatives.range_max %d exceeds the corpus (%d documents); using %d", settings.range_max,
                       corpus_size, corpus_size)
        return corpus_size
    return settings.range_max


def ranked_rows(
    anchors: list[str], anchor_vectors: np.ndarray, corpus_vectors: np.ndarray, doc_texts: Sequence[str],
    settings: MineNegativesParams, depth: int, memory_mb: float = 1024, lexical_settings: Bm25Params | None = None,
) -> list[np.ndarray]:
    """Each anchor's top ``depth`` corpus rows, best first, by the configured retriever; ``memory_mb`` bounds one
    block of the exact search (the machine's ``search_memory_mb``); ``lexical_settings``: how BM25 reads text (the
    ``bm25`` params; None: their defaults)."""
    def dense() -> np.ndarray:
        return search(anchor_vectors, corpus_vectors, depth, settings.search_backend, memory_mb,
                      settings.faiss_index, settings.faiss_search_params)[0]

    if settings.retriever == "dense":
        return [row[row >= 0] for row in dense()]
    lexical = bm25_search(doc_texts, anchors, depth, lexical_settings or Bm25Params())[0]
    if settings.retriever == "bm25":
        return [row[row >= 0] for row in lexical]
    # Scores of minus the rank make the fusion read each retriever's own order (ties included).
    runs = [{str(q): {str(int(r)): float(-rank) for rank, r in enumerate(row) if r >= 0} for q, row in enumerate(ranking)}
            for ranking in (dense(), lexical)]
    fused = reciprocal_rank_fusion(runs, depth)
    return [np.array([int(r) for r in fused.get(str(q), {})], dtype=np.int64) for q in range(len(anchors))]


def candidate_windows(
    anchors: list[str], anchor_vectors: np.ndarray, corpus_vectors: np.ndarray, doc_texts: Sequence[str],
    settings: MineNegativesParams, depth: int, memory_mb: float = 1024, lexical_settings: Bm25Params | None = None,
) -> dict[str, Window]:
    """Each anchor's candidates at ranks ``range_min`` .. ``depth`` - 1, with their dense scores; ``memory_mb`` and
    ``lexical_settings`` as in :func:`ranked_rows`."""
    windows = {}
    rankings = ranked_rows(anchors, anchor_vectors, corpus_vectors, doc_texts, settings, depth, memory_mb, lexical_settings)
    for anchor, vector, ranking in zip(anchors, anchor_vectors, rankings):
        rows = ranking[settings.range_min : depth]
        scores = np.asarray(corpus_vectors[rows], dtype=np.float32) @ vector
        windows[anchor] = Window(rows, np.arange(settings.range_min, settings.range_min + len(rows)), scores)
    return windows


def positive_vectors(
    pairs: list[Pair], stored: StoredEmbeddings, encode_documents: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Each pair's positive as a vector: its document's stored vector, or (not a corpus document) encoded."""
    row_of = {doc_id: row for row, doc_id in enumerate(stored.doc_ids)}
    outside = sorted({p.positive for p in pairs if p.positive_id not in row_of})
    encoded = dict(zip(outside, encode_documents(outside))) if outside else {}
    return np.stack([np.asarray(stored.vectors[row_of[p.positive_id]], dtype=np.float32) if p.positive_id in row_of else encoded[p.positive]
                     for p in pairs]) if pairs else np.zeros((0, stored.vectors.shape[1]), np.float32)
