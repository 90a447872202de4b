"""Where this process sits in a multi-process (DDP) run started by `torchrun` or `accelerate launch`.

Both launchers export ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; a plain ``python -m`` run has none of them
and counts as a world of one. The process group itself is created by the trainer (transformers/accelerate):
these helpers only read the environment, and synchronise once that group exists.
"""

from __future__ import annotations

import os

import torch


def world_size() -> int:
    """Number of training processes (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True in the one process that writes the stage's outputs."""
    return rank() == 0


def process_device(device: str) -> str:
    """The device this process trains on: under a launcher, CUDA means this process's own GPU (``LOCAL_RANK``)."""
    if device == "cuda" and world_size() > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def barrier() -> None:
    """Wait for every process, once the trainer has created the process group (a no-op otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def max_over_processes(value: float) -> float:
    """The largest ``value`` over all processes (``value`` itself without a process group)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        tensor = tensor.cuda()
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return float(tensor.item())


def finish() -> None:
    """Tear the process group down, so a launcher's processes exit cleanly."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
