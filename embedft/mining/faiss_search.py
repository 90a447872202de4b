"""Inner-product top-k search with FAISS, the optional backend for large corpora (``pip install '.[faiss]'``).

``Flat`` is exact (the same results as :func:`embedft.retrieval.exact_search`, multi-threaded); approximate
indexes such as ``IVF4096,Flat`` or ``HNSW32`` trade a little recall for much less time on millions of
documents. Results are re-ordered by (score, corpus position), so ties come out the same way as exact search.
"""

from __future__ import annotations

import re

import numpy as np

from embedft.core import PipelineError

QUERY_BATCH = 16_384
"""Queries searched per FAISS call: bounds the result buffers whatever the number of queries."""


def import_faiss():
    """The ``faiss`` module, or a :class:`PipelineError` saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise PipelineError(
            "params.yaml: mine_negatives.search_backend is 'faiss', but faiss is not installed; "
            "pip install 'embedding-finetune-template[faiss]' (or faiss-gpu), or use search_backend: exact"
        ) from None
    return faiss


def faiss_message(error: RuntimeError) -> str:
    """FAISS's own explanation, without the C++ function signature and source location before it."""
    text = str(error).strip()
    found = re.search(r" at \S+:\d+: (.*)$", text, flags=re.S)
    return (found.group(1) if found else text).strip()


def build_index(corpus: np.ndarray, index_spec: str = "Flat", search_params: str = ""):
    """A FAISS inner-product index over ``corpus``, trained on it first when the index type needs training.

    Args:
        corpus: (n_docs, dim) float32 vectors.
        index_spec: an ``index_factory`` description, e.g. ``Flat``, ``IVF1024,Flat``, ``HNSW32``.
        search_params: comma-separated search-time parameters, e.g. ``nprobe=16`` or ``efSearch=128``.
    """
    faiss = import_faiss()
    vectors = np.ascontiguousarray(corpus, dtype=np.float32)
    try:
        index = faiss.index_factory(vectors.shape[1], index_spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise PipelineError(f"params.yaml: mine_negatives.faiss_index '{index_spec}' is not a FAISS index description: "
                            f"{faiss_message(error)}") from None
    if not index.is_trained:
        try:
            index.train(vectors)
        except RuntimeError as error:
            raise PipelineError(f"params.yaml: mine_negatives.faiss_index '{index_spec}' cannot be trained on "
                                f"{vectors.shape[0]} documents: {faiss_message(error)}") from None
    index.add(vectors)
    if search_params:
        try:
            faiss.ParameterSpace().set_index_parameters(index, search_params)
        except RuntimeError as error:
            raise PipelineError(f"params.yaml: mine_negatives.faiss_search_params '{search_params}': "
                                f"{faiss_message(error)}") from None
    return index


def faiss_search(
    queries: np.ndarray, corpus: np.ndarray, top_k: int, index_spec: str = "Flat", search_params: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner-product search of ``corpus`` for each query with a FAISS index built on the fly.

    Returns:
        (indices, scores) of shape (n_queries, min(top_k, n_docs)), best first with ties by corpus position;
        places an approximate index could not fill hold index -1 and score -inf.
    """
    top_k = min(top_k, corpus.shape[0])
    if top_k == 0 or queries.shape[0] == 0:
        return np.zeros((queries.shape[0], top_k), dtype=np.int64), np.zeros((queries.shape[0], top_k), dtype=np.float32)
    index = build_index(corpus, index_spec, search_params)
    found_scores, found_indices = [], []
    for start in range(0, queries.shape[0], QUERY_BATCH):
        scores, indices = index.search(np.ascontiguousarray(queries[start : start + QUERY_BATCH], dtype=np.float32), top_k)
        found_scores.append(scores)
        found_indices.append(indices.astype(np.int64))
    scores, indices = np.concatenate(found_scores), np.concatenate(found_indices)
    scores = np.where(indices < 0, -np.inf, scores).astype(np.float32)
    # Missing places (-1) sort last; equal scores by corpus position, as exact search orders them.
    order = np.lexsort((np.where(indices < 0, np.iinfo(np.int64).max, indices), -scores), axis=1)
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(scores, order, axis=1)
