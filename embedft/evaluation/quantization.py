"""Embedding precisions for the truncation trade-off: float32, int8 (calibrated on the corpus) and binary."""

from __future__ import annotations

import numpy as np
from sentence_transformers import quantize_embeddings


def quantized_pair(corpus: np.ndarray, queries: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Quantize corpus and query vectors alike and return them as float32 arrays ready for inner-product search.

    Args:
        corpus: document vectors, one per row.
        queries: query vectors with the same width.
        precision: 'float32' (unchanged), 'int8' (documents quantized with per-dimension ranges calibrated on
            the corpus; queries stay float32), or 'binary' (one bit per dimension; inner product of ±1 vectors ranks exactly
            like Hamming similarity).

    Returns:
        (corpus, queries, bytes stored per document vector).
    """
    width = corpus.shape[1]
    if precision == "float32":
        return corpus, queries, 4 * width
    if precision == "int8":
        # Stored as int8, scored against float32 queries after dequantizing, as scalar-quantized vector
        # indexes (e.g. FAISS SQ8) do: a raw int8 dot product would ignore each dimension's offset and scale.
        ranges = np.vstack([corpus.min(axis=0), corpus.max(axis=0)])
        steps = np.maximum((ranges[1] - ranges[0]) / 255.0, 1e-12)
        stored = quantize_embeddings(corpus, "int8", ranges=ranges)
        return ((stored.astype(np.float32) + 128.0) * steps + ranges[0]).astype(np.float32), queries, width
    if precision == "binary":
        signs = [
            np.unpackbits(quantize_embeddings(x, "ubinary"), axis=1)[:, :width].astype(np.float32) * 2.0 - 1.0
            for x in (corpus, queries)
        ]
        return signs[0], signs[1], (width + 7) // 8
    raise ValueError(f"unknown precision '{precision}'")
