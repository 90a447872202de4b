"""Corpus encoding in bounded memory: the corpus is encoded in shards of rows that are written, each atomically,
to a work folder, then gathered into the store's ``vectors.npy`` one shard at a time.

Memory stays flat as the corpus grows: one shard's vectors (and its texts) at a time, never the whole matrix.
A killed encode leaves the finished shards behind, and the next run with the same model, prompt, window,
corpus and batching starts at the first missing shard. The rows are encoded in sentence-transformers' own
length order, one batch of ``batch_size`` texts at a time, and a shard is a whole number of batches, so the
batches, and hence the vectors, are exactly those of one ``SentenceTransformer.encode`` call over the corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from embedft.core import PipelineError, atomic_path

logger = logging.getLogger(__name__)

SHARD_FILE = "shard-{:06d}.npy"
VECTORS_FILE = "vectors.npy"
ShardEncoder = Callable[[list[str]], np.ndarray]
"""Encodes one shard's texts (already in length order) to float32 unit vectors, one row per text."""


def length_order(texts: Sequence[str]) -> np.ndarray:
    """Row positions longest text first: the order in which ``SentenceTransformer.encode`` batches its inputs
    (the same ``np.argsort`` call on the same keys, so ties fall the same way)."""
    return np.argsort([-len(text) for text in texts])


def rows_per_shard(shard_size: int, batch_size: int) -> int:
    """``shard_size`` rounded up to a whole number of batches, so a shard boundary never splits a batch."""
    return -(-max(shard_size, 1) // batch_size) * batch_size


def digest(parts: Iterable[str | bytes]) -> str:
    """A SHA-256 hex digest of the parts, each length-prefixed so that no two lists of parts collide."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


def model_fingerprint(path: str | Path) -> str:
    """A hash of a model folder's files (weights, configuration, tokenizer), so a retrained model at the same path
    gets a new key; a name that is no folder (a Hub id) is hashed as the name."""
    folder = Path(path)
    if not folder.is_dir():
        return digest(["name", str(path)])
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    hasher = hashlib.sha256()
    for file in files:
        hasher.update(str(file.relative_to(folder)).encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    return hasher.hexdigest()


def corpus_fingerprint(doc_ids: Sequence[str], texts: Sequence[str]) -> str:
    """A hash of the rows to encode: ids and texts, in order."""
    return digest(part for pair in zip(doc_ids, texts) for part in pair)


def shard_count(rows: int, per_shard: int) -> int:
    """Shards of ``per_shard`` rows that ``rows`` rows fill (the last may be short)."""
    return -(-rows // per_shard)


def missing_shards(work: Path, rows: int, per_shard: int) -> list[int]:
    """Indices of the shards not yet in ``work`` (a shard file is written atomically, so one there is complete)."""
    return [index for index in range(shard_count(rows, per_shard)) if not (work / SHARD_FILE.format(index)).is_file()]


def write_shard(work: Path, index: int, vectors: np.ndarray) -> None:
    """Write shard ``index`` atomically: a killed process leaves it whole or absent."""
    with atomic_path(work / SHARD_FILE.format(index)) as temporary, open(temporary, "wb") as handle:
        np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)


def encode_shards(encode_shard: ShardEncoder, texts: Sequence[str], order: np.ndarray, work: Path, per_shard: int) -> int:
    """Encode every shard missing from ``work``, in order, and return how many were encoded.

    Args:
        encode_shard: encodes one shard's texts.
        texts: the corpus texts in row order.
        order: row positions in encoding order (:func:`length_order`); shard i holds ``order[i*per_shard:...]``.
        work: the work folder of this (model, prompt, window, corpus, batching).
        per_shard: rows per shard (:func:`rows_per_shard`).
    """
    work.mkdir(parents=True, exist_ok=True)
    todo = missing_shards(work, len(order), per_shard)
    total = shard_count(len(order), per_shard)
    if todo and len(todo) < total:
        logger.info("resuming the corpus encode in %s: %d of %d shards already written", work, total - len(todo), total)
    for index in todo:
        rows = order[index * per_shard : (index + 1) * per_shard]
        write_shard(work, index, encode_shard([texts[i] for i in rows]))
        logger.info("encoded shard %d of %d (%d rows)", index + 1, total, len(rows))
    return len(todo)


def assemble(folder: Path, work: Path, order: np.ndarray, dimension: int, dtype: str, per_shard: int,
             doc_ids: list[str], info: dict) -> None:
    """Gather the shards into ``folder`` (``vectors.npy`` in row order, ``doc_ids.json``, ``info.json``) atomically.

    The output is mapped from disk one shard at a time, so neither it nor the shards are ever held whole.
    """
    with atomic_path(folder, is_dir=True) as temporary:
        target = temporary / VECTORS_FILE
        del_map(np.lib.format.open_memmap(target, mode="w+", dtype=np.dtype(dtype), shape=(len(order), dimension)))
        for index in range(shard_count(len(order), per_shard)):
            path = work / SHARD_FILE.format(index)
            rows = order[index * per_shard : (index + 1) * per_shard]
            shard = np.load(path, allow_pickle=False)
            if shard.shape != (len(rows), dimension):
                raise PipelineError(f"{path}: a shard of shape {shard.shape}, expected {(len(rows), dimension)}; delete {work} "
                                    "and run again")
            output = np.load(target, mmap_mode="r+")
            output[rows] = shard.astype(output.dtype, copy=False)
            del_map(output)
        (temporary / "doc_ids.json").write_text(json.dumps(doc_ids), encoding="utf-8")
        (temporary / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")


def del_map(array: np.memmap) -> None:
    """Flush a memory map and let it go, so its pages leave this process's resident memory."""
    array.flush()
    del array


def remove_work(work: Path) -> None:
    """Delete a finished (or abandoned) work folder."""
    shutil.rmtree(work, ignore_errors=True)
