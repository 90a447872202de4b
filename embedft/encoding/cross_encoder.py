"""Cross-encoders: loading one safely, and scoring (query, document) pairs with it, each pair once (the miner's
false-negative filter and evaluate's reranking both use them)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from sentence_transformers import CrossEncoder

from embedft.core import PipelineError
from embedft.encoding.models import check_local_path, load_failure, pick_device


def load_cross_encoder(name: str, device: str = "auto", max_length: int | None = None,
                       on_missing_gpu: str = "error", key: str = "mine_negatives.cross_encoder") -> CrossEncoder:
    """Load a sentence-transformers CrossEncoder by name or local path: safetensors weights only, no code shipped with it.

    Args:
        name: a Hugging Face name or a local folder (``mine_negatives.cross_encoder``).
        device: 'auto' or a torch device string.
        max_length: tokens kept per (query, document) pair; None keeps the model's own limit.
        on_missing_gpu: 'error' or 'cpu' when ``device`` names a GPU this machine lacks (the machine's ``on_missing_gpu``).
        key: the params key that named the model, quoted in errors.
    """
    check_local_path(name, name, key)
    try:
        return CrossEncoder(name, device=pick_device(device, on_missing_gpu), max_length=max_length, trust_remote_code=False,
                            model_kwargs={"use_safetensors": True})
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        if "safetensors" in str(error) and Path(name).expanduser().is_dir() or isinstance(error, pickle.UnpicklingError):
            raise PipelineError(f"params.yaml: {key}: '{name}' has no safetensors weights; only safetensors are loaded, "
                                "because pickled weights can run code. Convert it once (load it yourself and "
                                "save_pretrained(folder, safe_serialization=True)) and point the key at that folder") from None
        raise PipelineError(f"params.yaml: {key}: could not load '{name}': {load_failure(name, name, error)}") from None


class CachedPairScorer:
    """Scores (query, document) pairs with a cross-encoder, remembering every score so no pair is scored twice.

    Scores are the model's activated outputs: for a one-label cross-encoder, sentence-transformers applies a
    sigmoid, so they lie in (0, 1). New pairs are scored in one sorted batch, so the result does not depend on
    the order in which they are asked for.
    """

    def __init__(self, model: CrossEncoder, batch_size: int = 32, progress: bool = True,
                 key: str = "mine_negatives.cross_encoder"):
        """Args: model: the cross-encoder; batch_size: pairs per forward pass; progress: show a bar for long
        batches; key: the params key that named the model, quoted when it gives more than one score per pair."""
        self.model = model
        self.key = key
        self.batch_size = batch_size
        self.progress = progress
        self.cache: dict[tuple[str, str], float] = {}

    def __call__(self, pairs: list[tuple[str, str]]) -> list[float]:
        missing = sorted({pair for pair in pairs if pair not in self.cache})
        if missing:
            scores = self.model.predict(missing, batch_size=self.batch_size, convert_to_numpy=True,
                                        show_progress_bar=self.progress and len(missing) > 10 * self.batch_size)
            scores = np.asarray(scores, dtype=np.float32).reshape(len(missing), -1)
            if scores.shape[1] != 1:
                raise PipelineError(f"params.yaml: {self.key} gives {scores.shape[1]} scores per pair; "
                                    "a relevance cross-encoder (one score per pair) is needed")
            self.cache.update(zip(missing, (float(s) for s in scores[:, 0])))
        return [self.cache[pair] for pair in pairs]
