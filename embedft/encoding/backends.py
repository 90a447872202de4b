"""The engines that encode corpus shards, chosen by the machine setting ``encode_backend``: PyTorch in this process
(float32, or half precision on CUDA; several GPUs through sentence-transformers' multi-process pool), or
onnxruntime on the CPU with the project's own export of the model, cached by the model's hash."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from embedft.core import PipelineError, atomic_path
from embedft.encoding.encoder import encode
from embedft.encoding.onnx_encoder import ONNX_FILE, OnnxSentenceEncoder
from embedft.encoding.onnx_graph import copy_model_files, export_onnx
from embedft.encoding.shards import ShardEncoder, model_fingerprint

logger = logging.getLogger(__name__)

ONNX_EXTRA = "pip install 'embedding-finetune-template[onnx]'"
ONNX_CHECK_TEXTS = 32
"""Corpus texts (and as many short prefixes) encoded by both engines before the ONNX backend is trusted."""


def inference_dtype(precision: str, device: str) -> torch.dtype:
    """The dtype the model runs in: ``precision`` (the machine setting ``encode_precision``) on CUDA, float32 elsewhere.

    'auto' is bfloat16 where the GPU supports it (Ampere and later), else float16; both keep float32's ranking on
    the sample within 0.001 nDCG@10 (tests/test_half_precision.py, run where a GPU is present).
    """
    if not str(device).startswith("cuda") or precision == "float32":
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, precision)


def torch_shard_encoder(model: SentenceTransformer, prompt: str, batch_size: int) -> ShardEncoder:
    """Encode a shard one batch at a time, each batch exactly as ``SentenceTransformer.encode`` would form it over the
    whole corpus (the shard's texts come in its length order), so the vectors are byte-identical to one call."""

    def encode_shard(texts: list[str]) -> np.ndarray:
        return np.concatenate([encode(model, texts[start : start + batch_size], prompt, batch_size, progress=False)
                               for start in range(0, len(texts), batch_size)])

    return encode_shard


@contextlib.contextmanager
def pool_shard_encoder(model: SentenceTransformer, prompt: str, batch_size: int, devices: list[str]) -> Iterator[ShardEncoder]:
    """Encode shards on several devices at once through sentence-transformers' multi-process pool (one process per
    device, each with its own copy of the model); the pool is stopped on the way out."""
    pool = model.start_multi_process_pool(devices)
    try:
        def encode_shard(texts: list[str]) -> np.ndarray:
            chunk = max(batch_size, -(-len(texts) // len(devices)))
            vectors = model.encode(texts, pool=pool, prompt=prompt or None, batch_size=batch_size, chunk_size=chunk,
                                   normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            return np.asarray(vectors, dtype=np.float32)

        yield encode_shard
    finally:
        model.stop_multi_process_pool(pool)


def onnx_model_folder(model: SentenceTransformer, model_path: str, cache: Path, opset: int) -> Path:
    """The ONNX export of the model at ``model_path`` in ``cache/onnx/<hash of its files>``, exported on first use."""
    for package in ("onnxruntime", "onnx"):  # onnx: torch.onnx.export needs it
        try:
            found = importlib.util.find_spec(package) is not None
        except ValueError:  # a module set to None in sys.modules
            found = False
        if not found:
            raise PipelineError(f"machine setting encode_backend is 'onnx', which needs the '{package}' package: {ONNX_EXTRA}, "
                                "or set encode_backend: torch")
    if not Path(model_path).is_dir():
        raise PipelineError(f"machine setting encode_backend 'onnx': the model '{model_path}' is no local folder to export")
    folder = cache / "onnx" / model_fingerprint(model_path)
    if not (folder / ONNX_FILE).is_file():
        logger.info("exporting %s to ONNX (once) into %s", model_path, folder)
        with atomic_path(folder, is_dir=True) as temporary:
            copy_model_files(Path(model_path), temporary)
            export_onnx(model, temporary, opset)
    return folder


def onnx_shard_encoder(model: SentenceTransformer, model_path: str, prompt: str, batch_size: int, cache: Path, opset: int,
                       tolerance: float, sample: list[str]) -> ShardEncoder:
    """Encode shards with onnxruntime, after checking the export against PyTorch on ``sample``.

    Args:
        model: the PyTorch model (exported on first use, and the reference of the check).
        model_path: its folder; the cache key is the hash of its files.
        prompt: the document prompt.
        batch_size: texts per onnxruntime call.
        cache: the machine's cache folder.
        opset: ONNX opset of the export (``export.onnx_opset``).
        tolerance: largest absolute difference allowed from PyTorch's embeddings (``export.tolerance``).
        sample: corpus texts for the check; their first words are checked too (padding and truncation).
    """
    folder = onnx_model_folder(model, model_path, cache, opset)
    encoder = OnnxSentenceEncoder(folder)
    encoder.max_seq_length = model.max_seq_length  # base.max_seq_length, which may differ from the saved model's
    checked = sample[:ONNX_CHECK_TEXTS] + [" ".join(text.split()[:4]) for text in sample[:ONNX_CHECK_TEXTS]]
    model.to("cpu")
    difference = float(np.abs(encode(model, checked, prompt, batch_size, progress=False)
                              - encoder.encode(checked, batch_size=batch_size, prompt=prompt or None)).max()) if checked else 0.0
    if difference > tolerance:
        raise PipelineError(f"params.yaml: export.tolerance: with encode_backend 'onnx' the embeddings of {folder} differ from "
                            f"PyTorch's by up to {difference:.3g}, more than {tolerance:g}; set encode_backend: torch, or "
                            f"delete {folder} to export again")
    logger.info("ONNX backend: %s, %d texts within %.2g of PyTorch", folder, len(checked), difference)
    return lambda texts: encoder.encode(texts, batch_size=batch_size, prompt=prompt or None)
