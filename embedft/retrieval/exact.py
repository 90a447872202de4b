"""Exact inner-product top-k search in bounded memory, deterministic whatever the block size."""

from __future__ import annotations

import numpy as np
import torch


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (rows of zeros stay zero), in float32 whatever the stored precision."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def top_rows_stable(scores: np.ndarray, keep: int) -> np.ndarray:
    """Column indices of each row's ``keep`` highest scores, ties at the cut-off going to the lower index.

    ``torch.topk`` (multi-threaded, and allocating only the results) picks ``keep + 1``; where the last two
    are equal the row has a tie at the cut-off, which topk may break either way, so those rows (rare with
    float scores) are redone with a stable sort. The order within the result is left to the caller.
    """
    if keep >= scores.shape[1]:  # every column is kept (or none, for an empty chunk)
        return np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    if keep == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    values, part = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), keep + 1, dim=1)
    tied_rows = np.flatnonzero((values[:, keep] == values[:, keep - 1]).numpy())
    part = part[:, :keep].numpy()
    if tied_rows.size:
        part[tied_rows] = np.argsort(-scores[tied_rows], axis=1, kind="stable")[:, :keep]
    return part


BYTES_PER_SCORE = 5
"""Working memory of exact search per (query, document) cell of a block: the float32 score (4 bytes) and a
margin for topk's per-thread work (measured: 4.1 to 4.3 bytes per cell in all)."""


def search_block_shape(memory_mb: float, n_queries: int, n_docs: int) -> tuple[int, int]:
    """Queries and corpus rows scored at once so that one block's working memory stays within ``memory_mb``.

    The corpus side is made as wide as the budget allows (fewer top-k merges); at least 64 queries (or all of
    them, if fewer) are scored together so the matrix product stays efficient.

    Args:
        memory_mb: the budget for one block, in MiB.
        n_queries: queries to search for.
        n_docs: corpus rows.

    Returns:
        (query rows per block, corpus rows per block), each at least 1.
    """
    cells = max(1, int(memory_mb * 2**20) // BYTES_PER_SCORE)
    queries = max(1, min(n_queries, max(64, cells // max(n_docs, 1))))
    return queries, max(1, min(n_docs, cells // queries))


def exact_search(
    queries: np.ndarray, corpus: np.ndarray, top_k: int, chunk_size: int = 50_000, query_batch_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k, scanning the corpus in chunks so memory is bounded by the block size.

    Ties are broken by corpus position, so results are deterministic and do not depend on the block size.

    Args:
        queries: (n_queries, dim) vectors.
        corpus: (n_docs, dim) vectors; a memory-mapped array is read one chunk at a time.
        top_k: results per query (clipped to the corpus size).
        chunk_size: corpus rows scored at once.
        query_batch_size: queries scored at once; ``None`` scores them all together. Working memory is about
            ``query_batch_size * chunk_size * BYTES_PER_SCORE`` bytes.

    Returns:
        (indices, scores), each of shape (n_queries, min(top_k, n_docs)), best first.
    """
    top_k = min(top_k, corpus.shape[0])
    batch = query_batch_size or max(queries.shape[0], 1)
    if queries.shape[0] > batch:
        parts = [exact_search(queries[start : start + batch], corpus, top_k, chunk_size, batch)
                 for start in range(0, queries.shape[0], batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    best_scores = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    best_indices = np.zeros((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, corpus.shape[0], chunk_size):
        scores = queries @ np.asarray(corpus[start : start + chunk_size], dtype=np.float32).T  # float16 stores score in float32
        keep = min(top_k, scores.shape[1])
        part = top_rows_stable(scores, keep)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        best_indices = np.concatenate([best_indices, part + start], axis=1)
        order = np.lexsort((best_indices, -best_scores), axis=1)[:, :top_k]
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best_indices = np.take_along_axis(best_indices, order, axis=1)
    return best_indices, best_scores
