"""encode_backend ray: the corpus shards encoded on a Ray cluster with Ray Data's ``map_batches``, one copy of the
model per actor, and written by this process into the same resumable work folder as the in-process backends.

Only the shards missing from the work folder are sent, in encoding order; the results come back in that order
(``preserve_order``), so this process holds about one shard at a time. The actors load the model from its folder,
so on a multi-machine cluster that folder must be at the same path on every node (shared storage); this package
travels to the workers as a runtime-environment module.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from embedft.config import BaseParams, MachineSettings
from embedft.core import PipelineError
from embedft.encoding.shards import missing_shards, shard_count, write_shard

logger = logging.getLogger(__name__)

RAY_EXTRA = "pip install 'embedding-finetune-template[ray]'"


class ShardActor:
    """A Ray Data actor: loads the model once, then encodes batches of ``{"position", "text"}`` rows."""

    def __init__(self, model_path: str, max_seq_length: int, prompt: str, batch_size: int, trust_remote_code: bool,
                 device: str) -> None:
        from embedft.encoding.models import load_model

        self.model = load_model(model_path, device, max_seq_length, key=None, trust_remote_code=trust_remote_code)
        self.prompt, self.batch_size = prompt, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from embedft.encoding.encoder import encode

        vectors = encode(self.model, [str(text) for text in batch["text"]], self.prompt, self.batch_size, progress=False)
        return {"position": batch["position"], "vector": vectors}


def job_runtime_env() -> dict:
    """The Ray job's runtime environment: this package, uploaded to every worker (Ray takes local folders only for
    the whole job, at ``ray.init``), so the workers run this very code whatever is installed on the nodes."""
    import embedft

    return {"py_modules": [str(Path(embedft.__file__).parent)]}


def connect(address: str) -> bool:
    """Join the cluster at ``address`` ('' starts a local one) unless this process already did; True if it joined here.

    A process that joined a cluster itself must pass :func:`job_runtime_env` to ``ray.init``.
    """
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING, runtime_env=job_runtime_env())
    return True


def encode_shards_on_ray(model_path: str, base: BaseParams, machine: MachineSettings, texts: list[str], order: np.ndarray,
                         work: Path, per_shard: int) -> int:
    """Encode the shards missing from ``work`` on Ray and write them there; return how many were encoded.

    Args:
        model_path: the model's folder, loaded by every actor.
        base: document prompt, window and remote-code setting.
        machine: ``ray_address``, ``ray_workers``, ``ray_gpus_per_worker`` and ``encode_batch_size``.
        texts: the corpus texts in row order.
        order: row positions in encoding order.
        work: the work folder (see :func:`embedft.encoding.shards.encode_shards`).
        per_shard: rows per shard.
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise PipelineError(f"machine setting encode_backend is 'ray', which needs Ray Data: {RAY_EXTRA}, or set "
                            "encode_backend: torch") from None
    work.mkdir(parents=True, exist_ok=True)
    todo = missing_shards(work, len(order), per_shard)
    if not todo:
        return 0
    joined = connect(machine.ray_address)
    try:
        positions = np.concatenate([np.arange(i * per_shard, min((i + 1) * per_shard, len(order))) for i in todo])
        dataset = ray.data.from_items([{"position": int(p), "text": texts[order[p]]} for p in positions])
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        gpus = machine.ray_gpus_per_worker
        encoded = dataset.map_batches(
            ShardActor, batch_size=machine.encode_batch_size, batch_format="numpy", concurrency=machine.ray_workers,
            num_gpus=gpus or None, fn_constructor_args=(model_path, base.max_seq_length, base.document_prompt,
                                                        machine.encode_batch_size, base.trust_remote_code, "cuda" if gpus else "cpu"),
        )
        pending: dict[int, tuple[np.ndarray, int]] = {}
        total = shard_count(len(order), per_shard)
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            for position, vector in zip(batch["position"], batch["vector"]):
                index = int(position) // per_shard
                rows = min(per_shard, len(order) - index * per_shard)
                vectors, filled = pending.get(index) or (np.empty((rows, len(vector)), np.float32), 0)
                vectors[int(position) - index * per_shard] = vector
                pending[index] = (vectors, filled + 1)
                if filled + 1 == rows:
                    write_shard(work, index, pending.pop(index)[0])
                    logger.info("encoded shard %d of %d on Ray (%d rows)", index + 1, total, rows)
        if pending:
            raise PipelineError(f"Ray returned no vectors for rows of shards {sorted(pending)}; run again to resume")
    finally:
        if joined:
            ray.shutdown()
    return len(todo)
