"""Top-k inner-product search over stored vectors, exact or through FAISS: the choice `mine_negatives.search_backend`
makes. Kept in `mining`, not `retrieval`, so that only the stages that can search with FAISS depend on its code."""

from __future__ import annotations

import numpy as np

from embedft.mining.faiss_search import faiss_search
from embedft.retrieval import exact_search, search_block_shape


def search(
    queries: np.ndarray,
    corpus: np.ndarray,
    top_k: int,
    backend: str = "exact",
    memory_mb: float = 1024,
    faiss_index: str = "Flat",
    faiss_search_params: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner-product search with the chosen backend.

    Args:
        queries: (n_queries, dim) vectors.
        corpus: (n_docs, dim) vectors.
        top_k: results per query.
        backend: ``exact`` (chunked numpy, working memory bounded by ``memory_mb``) or ``faiss``.
        memory_mb: the exact search's working-memory budget per block, in MiB.
        faiss_index: a FAISS ``index_factory`` description (``Flat`` is exact; ``IVF1024,Flat`` or ``HNSW32``
            are approximate); only for ``faiss``.
        faiss_search_params: FAISS search-time parameters such as ``nprobe=16``; only for ``faiss``.

    Returns:
        (indices, scores) of shape (n_queries, min(top_k, n_docs)), best first, ties by corpus position.
        An approximate FAISS index may find fewer than ``top_k``: missing places hold index -1.
    """
    if backend == "faiss":
        return faiss_search(queries, corpus, top_k, faiss_index, faiss_search_params)
    query_batch, chunk = search_block_shape(memory_mb, queries.shape[0], corpus.shape[0])
    return exact_search(queries, corpus, top_k, chunk, query_batch)
