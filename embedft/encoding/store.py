"""Corpus embeddings stored by one stage for others to reuse: the vectors, the document ids in row order, and
what produced them (model, document prompt, sequence length)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from embedft.config import BaseParams
from embedft.core import Document, PipelineError, atomic_path
from embedft.encoding.encoder import encode


@dataclass
class StoredEmbeddings:
    """Corpus embeddings saved by one stage for reuse by others."""

    vectors: np.ndarray
    doc_ids: list[str]
    info: dict


def corpus_embeddings(model: SentenceTransformer, model_name: str, corpus: dict[str, Document], base: BaseParams,
                      batch_size: int = 64) -> StoredEmbeddings:
    """Encode every document (title and text, with the document prompt), recording what produced the vectors.

    Args:
        model: the encoder.
        model_name: how the model is named in params or on disk, kept in the stored ``info``.
        corpus: the documents, in the row order of the result.
        base: the document prompt and sequence length used.
        batch_size: texts per forward pass (the machine's ``encode_batch_size``).
    """
    vectors = encode(model, [d.full_text for d in corpus.values()], base.document_prompt, batch_size)
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
