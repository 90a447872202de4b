"""The corpus encoding of the `embed_corpus` and `embed_finetuned` stages: shards through the backend the machine
settings choose, resumable from the work folder, gathered into the store that later stages memory-map."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from embedft.config import BaseParams, ExportParams, MachineSettings
from embedft.core.artifacts import EMBEDDING_SHARDS_DIR
from embedft.encoding.backends import inference_dtype, onnx_shard_encoder, pool_shard_encoder, torch_shard_encoder
from embedft.encoding.models import resolve_model_path
from embedft.encoding.shards import (
                                     ShardEncoder,
                                     assemble,
                                     corpus_fingerprint,
                                     digest,
                                     encode_shards,
                                     length_order,
                                     model_fingerprint,
                                     remove_work,
                                     rows_per_shard,
)
from embedft.encoding.store import StoredEmbeddings, load_embeddings

logger = logging.getLogger(__name__)


def backend_identity(model: SentenceTransformer, machine: MachineSettings) -> str:
    """What, besides model, prompt, window, corpus and batching, decides the vectors: the backend and its precision."""
    if machine.encode_backend != "torch":
        return machine.encode_backend
    devices = machine.encode_devices if len(machine.encode_devices) > 1 else [str(model.device)]
    return f"torch:{inference_dtype(machine.encode_precision, devices[0])}:{','.join(devices)}"


def work_folder(work_root: Path, model: SentenceTransformer, model_name: str, doc_ids: list[str], texts: list[str],
                base: BaseParams, machine: MachineSettings) -> Path:
    """The folder of this encode's shards: one per (model files, prompt, window, corpus, batching, backend), so only
    a rerun of the very same encode picks up its shards."""
    per_shard = rows_per_shard(machine.encode_shard_size, machine.encode_batch_size)
    key = digest([model_fingerprint(resolve_model_path(model_name)), base.document_prompt, str(model.max_seq_length),
                  corpus_fingerprint(doc_ids, texts), str(machine.encode_batch_size), str(per_shard), backend_identity(model, machine)])
    return work_root / key[:32]


@contextlib.contextmanager
def in_process_encoder(model: SentenceTransformer, model_path: str, base: BaseParams, machine: MachineSettings,
                       export: ExportParams, texts: list[str]) -> Iterator[ShardEncoder]:
    """The torch or onnx shard encoder the machine settings ask for (Ray encodes elsewhere: embedft.encoding.ray_backend)."""
    batch = machine.encode_batch_size
    if machine.encode_backend == "onnx":
        yield onnx_shard_encoder(model, model_path, base.document_prompt, batch, machine.cache_folder, export.onnx_opset,
                                 export.tolerance, texts)
        return
    dtype = inference_dtype(machine.encode_precision, str(model.device))
    if dtype != torch.float32:
        logger.info("encoding in %s on %s (machine setting encode_precision: %s)", dtype, model.device, machine.encode_precision)
        model.to(dtype)
    if len(machine.encode_devices) > 1:
        with pool_shard_encoder(model, base.document_prompt, batch, machine.encode_devices) as encode_shard:
            yield encode_shard
    else:
        yield torch_shard_encoder(model, base.document_prompt, batch)


def store_corpus_embeddings(folder: Path, model: SentenceTransformer, model_name: str, doc_ids: list[str], texts: list[str],
                            base: BaseParams, machine: MachineSettings, export: ExportParams,
                            work_root: Path = EMBEDDING_SHARDS_DIR) -> StoredEmbeddings:
    """Encode the corpus shard by shard into ``folder`` and return the store, memory-mapped.

    Args:
        folder: the store (``vectors.npy`` in ``base.embedding_dtype``, ``doc_ids.json``, ``info.json``).
        model: the encoder, loaded with ``base.max_seq_length``.
        model_name: the model's name in params or its folder, kept in ``info.json``.
        doc_ids: the documents' ids in row order.
        texts: their texts (title and text) in the same order.
        base: the document prompt, window and stored dtype.
        machine: batch and shard sizes, backend, precision, devices, resuming.
        export: ``onnx_opset`` and ``tolerance`` of the ONNX backend.
        work_root: where the shards of unfinished encodes wait; one folder per (model files, prompt, window,
            corpus, batching, backend), deleted once the store is written.
    """
    model_path = resolve_model_path(model_name)
    per_shard = rows_per_shard(machine.encode_shard_size, machine.encode_batch_size)
    work = work_folder(work_root, model, model_name, doc_ids, texts, base, machine)
    if not machine.resume:
        remove_work(work)
    order = length_order(texts)
    dimension = model.get_embedding_dimension()
    if machine.encode_backend == "ray":
        from embedft.encoding.ray_backend import encode_shards_on_ray

        encode_shards_on_ray(model_path, base, machine, texts, order, work, per_shard)
    else:
        with in_process_encoder(model, model_path, base, machine, export, texts) as encode_shard:
            encode_shards(encode_shard, texts, order, work, per_shard)
    info = {"model": model_name, "document_prompt": base.document_prompt, "max_seq_length": base.max_seq_length}
    assemble(folder, work, order, dimension, base.embedding_dtype, per_shard, doc_ids, info)
    remove_work(work)
    return load_embeddings(folder, memory_map=True)
