"""Encoding with prompts, exact top-k search in bounded memory, and stored corpus embeddings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from stages.atomic import atomic_path
from stages.data_io import Document
from stages.errors import PipelineError
from stages.params import BaseParams

Run = dict[str, dict[str, float]]
"""A ranking: query id -> document id -> score."""


def encode(
    model: SentenceTransformer,
    texts: list[str],
    prompt: str = "",
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Encode texts to L2-normalised float32 vectors.

    Args:
        model: the encoder.
        texts: what to encode.
        prompt: text put before each input (a query or document instruction); empty for none.
        batch_size: texts per forward pass.
        progress: show a progress bar.
    """
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        texts,
        prompt=prompt or None,
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (rows of zeros stay zero)."""
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
        scores = queries @ np.asarray(corpus[start : start + chunk_size]).T
        keep = min(top_k, scores.shape[1])
        part = top_rows_stable(scores, keep)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        best_indices = np.concatenate([best_indices, part + start], axis=1)
        order = np.lexsort((best_indices, -best_scores), axis=1)[:, :top_k]
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best_indices = np.take_along_axis(best_indices, order, axis=1)
    return best_indices, best_scores


def to_run(query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray) -> Run:
    """Turn search results into a ``Run`` keyed by ids."""
    return {
        query_id: {doc_ids[i]: float(s) for i, s in zip(indices[row], scores[row])}
        for row, query_id in enumerate(query_ids)
    }


@dataclass
class StoredEmbeddings:
    """Corpus embeddings saved by one stage for reuse by others."""

    vectors: np.ndarray
    doc_ids: list[str]
    info: dict


def corpus_embeddings(model: SentenceTransformer, model_name: str, corpus: dict[str, Document], base: BaseParams) -> StoredEmbeddings:
    """Encode every document (title and text, with the document prompt), recording what produced the vectors.

    Args:
        model: the encoder.
        model_name: how the model is named in params or on disk, kept in the stored ``info``.
        corpus: the documents, in the row order of the result.
        base: the document prompt, batch size and sequence length used.
    """
    vectors = encode(model, [d.full_text for d in corpus.values()], base.document_prompt, base.encode_batch_size)
    info = {"model": model_name, "document_prompt": base.document_prompt, "max_seq_length": base.max_seq_length}
    return StoredEmbeddings(vectors=vectors, doc_ids=list(corpus), info=info)


def save_embeddings(folder: Path, stored: StoredEmbeddings) -> None:
    """Write ``vectors.npy``, ``doc_ids.json`` and ``info.json`` (model, prompt, length) atomically."""
    with atomic_path(folder, is_dir=True) as temporary:
        np.save(temporary / "vectors.npy", stored.vectors, allow_pickle=False)
        (temporary / "doc_ids.json").write_text(json.dumps(stored.doc_ids), encoding="utf-8")
        (temporary / "info.json").write_text(json.dumps(stored.info, indent=2, sort_keys=True), encoding="utf-8")


def load_embeddings(folder: Path, corpus: dict[str, Document] | None = None, memory_map: bool = False) -> StoredEmbeddings:
    """Read embeddings written by :func:`save_embeddings`.

    Args:
        folder: the folder :func:`save_embeddings` wrote.
        corpus: when given, the stored rows must be exactly these documents in this order; otherwise the
            embeddings are stale (written for another corpus) and a :class:`PipelineError` says so.
        memory_map: map the vectors read-only from disk instead of reading them into memory (for corpora
            larger than RAM; :func:`exact_search` reads them a chunk at a time).
    """
    try:
        stored = StoredEmbeddings(
            vectors=np.load(folder / "vectors.npy", allow_pickle=False, mmap_mode="r" if memory_map else None),
            doc_ids=json.loads((folder / "doc_ids.json").read_text(encoding="utf-8")),
            info=json.loads((folder / "info.json").read_text(encoding="utf-8")),
        )
    except FileNotFoundError as error:
        raise PipelineError(f"{folder}: stored embeddings are missing ({Path(error.filename).name}); run `dvc repro`") from None
    if corpus is not None and stored.doc_ids != list(corpus):
        raise PipelineError(f"{folder}: the stored embeddings were computed for another corpus; run `dvc repro`")
    return stored


def reciprocal_rank_fusion(runs: list[Run], top_k: int, k: int = 60) -> Run:
    """Fuse rankings by summing 1 / (k + rank) over the runs (Cormack et al., 2009)."""
    fused: Run = {}
    for query_id in sorted({q for run in runs for q in run}):
        totals: dict[str, float] = {}
        for run in runs:
            ranked = sorted(run.get(query_id, {}).items(), key=lambda item: (-item[1], item[0]))
            for rank, (doc_id, _) in enumerate(ranked, start=1):
                totals[doc_id] = totals.get(doc_id, 0.0) + 1.0 / (k + rank)
        best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:top_k]
        fused[query_id] = dict(best)
    return fused


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
