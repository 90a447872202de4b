"""How this machine runs the pipeline: the device, batch sizes for inference, memory bounds, resuming, worker
counts. None of it changes a result, so none of it is a DVC param: moving from a laptop to a GPU workstation
reruns nothing by itself.

The settings come from, in order (later wins):

1. the defaults below (right for a laptop CPU);
2. ``machine.yaml`` in the project root (git-ignored, so each machine keeps its own; ``machine.example.yaml``
   lists every key), or the file named by ``EMBEDFT_MACHINE_FILE``;
3. one environment variable per key: ``EMBEDFT_`` and the key in capitals, e.g. ``EMBEDFT_DEVICE=cuda:1`` or
   ``EMBEDFT_ENCODE_BATCH_SIZE=256`` (values are read as YAML scalars, so ``true`` and ``256`` are typed).

Both are validated like ``params.yaml``: an unknown key or a wrong type stops the stage with a message naming
the file or the variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import platformdirs
import yaml
from pydantic import Field, field_validator

from embedft.config.validation import Section, read_yaml_mapping, validate
from embedft.core import PipelineError

MACHINE_FILE = Path("machine.yaml")
MACHINE_FILE_VARIABLE = "EMBEDFT_MACHINE_FILE"
ENV_PREFIX = "EMBEDFT_"
DEVICE = re.compile(r"auto|cpu|mps|(cuda|xpu|npu|hpu)(:\d+)?")
"""The device strings `device` accepts: 'auto', or a torch device type, with an index where it takes one."""


class MachineSettings(Section):
    """The machine's settings; every key can also be set by the environment variable ``EMBEDFT_<KEY>``."""

    device: str = Field("auto", description="'auto' (CUDA, then Apple MPS, then the CPU), or a torch device string such as 'cuda:1'.")
    on_missing_gpu: Literal["error", "cpu"] = Field(
        "error", description="When `device` names a GPU this machine lacks: 'error' stops, 'cpu' warns and uses the CPU."
    )
    encode_batch_size: int = Field(64, ge=1, description="Texts per forward pass when encoding (inference). GPU: 256.")
    encode_shard_size: int = Field(
        16_384, ge=1, description="Corpus rows per shard of the on-disk embedding store (rounded up to a multiple of "
        "encode_batch_size, so shards never change a batch): bounds encoding memory, and a killed encode resumes at the "
        "first missing shard. Not a result."
    )
    encode_backend: Literal["torch", "onnx", "ray"] = Field(
        "torch", description="Corpus encoding: 'torch' in this process; 'onnx' with onnxruntime on the CPU (the base "
        "model exported once into cache_dir, keyed by its weights' hash, checked against PyTorch within export.tolerance; "
        "extra [onnx]); 'ray' on a Ray cluster (extra [ray], see ray_address). Vectors agree within export.tolerance."
    )
    encode_precision: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "float32", description="Inference precision of torch encoding on CUDA: 'auto' = bfloat16 where the GPU supports "
        "it, else float16; the CPU always encodes in float32. Half precision changes vectors slightly (the GPU test "
        "requires nDCG@10 on the sample within 0.001 of float32), so float32 is the default."
    )
    encode_devices: list[str] = Field(
        [], description="GPUs that encode the corpus in parallel (sentence-transformers' multi-process pool), e.g. "
        "[cuda:0, cuda:1]; [] = the one `device`."
    )
    ray_address: str = Field(
        "", description="encode_backend ray: the cluster to join, e.g. 'ray://head:10001' or 'auto'; '' starts a local "
        "cluster on this machine."
    )
    ray_workers: int = Field(2, ge=1, description="encode_backend ray: encoder actors (each holds one copy of the model).")
    ray_gpus_per_worker: float = Field(0.0, ge=0.0, description="encode_backend ray: GPUs each actor reserves (0 = CPU).")
    search_chunk_size: int = Field(
        50_000, ge=1, description="Corpus rows scored at once by evaluation's exact search; bounds memory, not results."
    )
    search_memory_mb: float = Field(
        1024, ge=1, description="Working memory of one exact-search block of hard-negative mining, in MiB; bounds memory "
        "whatever the corpus size, not results."
    )
    cross_encoder_batch_size: int = Field(32, ge=1, description="(query, document) pairs per cross-encoder forward pass when mining.")
    train_mini_batch_size: int = Field(
        32, ge=1, description="Cached* losses: texts per forward pass while training; memory follows it, not train.batch_size. "
        "GPU: 64 to 128."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory while training, about 30% slower. "
        "GPU: true for large models."
    )
    resume: bool = Field(
        True, description="Resume an interrupted training run from its last checkpoint (.checkpoints/) when its params "
        "and data are unchanged; false = always start afresh."
    )
    llm_concurrency: int = Field(4, ge=1, description="synthesize.llm: requests in flight at once.")
    llm_timeout_seconds: float = Field(60.0, gt=0.0, description="synthesize.llm: a request with no reply after this long is retried.")
    llm_max_retries: int = Field(
        6, ge=0, description="synthesize.llm: retries per passage after a rate limit (429), server error (5xx), timeout or lost connection."
    )
    llm_backoff_initial_seconds: float = Field(1.0, ge=0.0, description="synthesize.llm: first wait before a retry; doubles each time.")
    llm_backoff_max_seconds: float = Field(
        60.0, ge=0.0, description="synthesize.llm: longest wait before a retry. A 429 whose Retry-After asks for longer stops the stage."
    )
    cache_dir: str = Field(
        "", description="Folder of what this machine keeps across runs, experiments and projects: synthesize.llm's reply "
        "cache (llm_queries.sqlite, unless synthesize.llm.cache names a file). '' = the user's cache folder "
        "(~/.cache/embedft on Linux, ~/Library/Caches/embedft on macOS, as platformdirs says). Queued and temporary "
        "experiment runs see the same folder, and the environment variable EMBEDFT_CACHE_DIR."
    )

    @property
    def cache_folder(self) -> Path:
        """The folder ``cache_dir`` names (``~`` expanded), or the user's cache folder for embedft."""
        return Path(self.cache_dir).expanduser() if self.cache_dir.strip() else Path(platformdirs.user_cache_dir("embedft"))

    @field_validator("device")
    @classmethod
    def device_is_a_torch_device(cls, value: str) -> str:
        if not DEVICE.fullmatch(value.strip()):
            raise ValueError("expected auto, cpu, mps, or cuda / xpu / npu / hpu with an optional index such as cuda:1")
        return value.strip()

    @field_validator("encode_devices")
    @classmethod
    def devices_are_torch_devices(cls, value: list[str]) -> list[str]:
        for device in value:
            if not DEVICE.fullmatch(device.strip()) or device.strip() == "auto":
                raise ValueError(f"'{device}' is not a torch device such as cuda:0")
        return [device.strip() for device in value]


def machine_file(environment: dict[str, str] | None = None) -> Path:
    """The settings file: ``EMBEDFT_MACHINE_FILE`` when set, else ``machine.yaml``."""
    environment = os.environ if environment is None else environment
    return Path(environment.get(MACHINE_FILE_VARIABLE) or MACHINE_FILE)


def environment_overrides(environment: dict[str, str]) -> dict[str, object]:
    """The settings given as ``EMBEDFT_<KEY>`` variables, by key; a variable naming no key is an error."""
    overrides: dict[str, object] = {}
    known = set(MachineSettings.model_fields)
    for variable, text in sorted(environment.items()):
        if not variable.startswith(ENV_PREFIX) or variable == MACHINE_FILE_VARIABLE:
            continue
        key = variable[len(ENV_PREFIX):].lower()
        if key not in known:
            names = ", ".join(f"{ENV_PREFIX}{name.upper()}" for name in sorted(known))
            raise PipelineError(f"environment variable {variable}: not a machine setting (known: {names}, {MACHINE_FILE_VARIABLE})")
        try:
            overrides[key] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            overrides[key] = text
    return overrides


def load_machine(environment: dict[str, str] | None = None) -> MachineSettings:
    """The machine settings: defaults, then the settings file (if there is one), then the environment.

    Args:
        environment: the variables to read (``os.environ`` by default).

    Raises:
        PipelineError: naming the file or variable and the key, for an unknown key or a wrong value.
    """
    environment = dict(os.environ if environment is None else environment)
    path = machine_file(environment)
    if MACHINE_FILE_VARIABLE in environment and not path.is_file():
        raise PipelineError(f"{MACHINE_FILE_VARIABLE}={environment[MACHINE_FILE_VARIABLE]}: no such file")
    from_file = read_yaml_mapping(path, missing_ok=True)
    settings = validate(MachineSettings, from_file, path)
    overrides = environment_overrides(environment)
    for key, value in overrides.items():
        validate(MachineSettings, {**from_file, key: value}, f"environment variable {ENV_PREFIX}{key.upper()}")
    return validate(MachineSettings, {**from_file, **overrides}, "the environment") if overrides else settings
