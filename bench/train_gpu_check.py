"""Checks of the `train` stage that need a GPU, on a model of the base model's shape (random weights allowed).

Not a test: run it on a GPU machine, where the test suite (CPU only) cannot reach. It prints one JSON line per
check and writes them to ``--out``:

- ``default``: the shipped recipe with dev evaluation; reports the precision `auto` chose, pairs/s and peak
  GPU memory, and that the saved model loads back with the same embeddings;
- ``cached_lora_checkpointing``: CachedMultipleNegativesRankingLoss with a batch of 256 in mini-batches of 32,
  LoRA adapters and gradient checkpointing together;
- ``out_of_memory``: a batch far beyond the GPU's memory, which must end in the stage's advice, not a traceback.

    python bench/train_speed.py --scifact ../shared/bench/scifact --steps 1 --rounds 1 --save-rows bench/work/train_speed/negatives.jsonl
    python bench/train_gpu_check.py --rows bench/work/train_speed/negatives.jsonl --random-weights
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from train_speed import random_weights_model  # a sibling script

from embedft.config import BaseParams, LoraParams, MachineSettings, TrainParams
from embedft.core import PipelineError
from embedft.encoding import pick_device, resolve_model_path
from embedft.training import DevSet, build_training_set, fine_tune
from embedft.training.arguments import choose_precision

ROOT = Path(__file__).resolve().parents[1]


def dev_from_rows(rows: list[dict], count: int) -> DevSet:
    """A dev task from the first ``count`` rows: each anchor must find its positive among positives and negatives."""
    documents = {f"d{i}": row["positive"] for i, row in enumerate(rows[:count])}
    documents.update({f"n{i}": row["negative_1"] for i, row in enumerate(rows[:count]) if "negative_1" in row})
    queries = {f"q{i}": rows[i]["anchor"] for i in range(0, count, 4)}
    return DevSet(queries, {q: {f"d{q[1:]}"} for q in queries}, documents, len(documents))


def check_training(name: str, rows_dir: Path, dev: DevSet, base: BaseParams, machine: MachineSettings, work: Path, scale: float,
                   machine_changes: dict | None = None, **changes) -> dict:
    """Train with ``changes`` over the default train params and ``machine_changes`` over ``machine``; ``scale``
    shrinks batch sizes and steps (1 = the real check)."""
    values = {"batch_size": 64, "max_steps": 60, "eval_steps": 20, "logging_steps": 10, **changes}
    for key in ("batch_size", "max_steps", "eval_steps"):
        if key in values:
            values[key] = max(2 if key == "batch_size" else 1, int(values[key] * scale))
    settings = TrainParams(**values)
    machine_values = {**machine.model_dump(), **(machine_changes or {})}
    if machine_changes and "train_mini_batch_size" in machine_changes:
        machine_values["train_mini_batch_size"] = max(1, int(machine_changes["train_mini_batch_size"] * scale))
    run_machine = MachineSettings(**machine_values)
    if pick_device(run_machine.device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model, report, facts = fine_tune(build_training_set(settings, rows_dir, settings.batch_size), dev, base, settings, run_machine,
                                     work / name)
    model.save(str(work / name / "saved"))
    loaded = SentenceTransformer(str(work / name / "saved"), device=model.device.type)
    same = bool(torch.allclose(torch.tensor(loaded.encode(["a query"])), torch.tensor(model.encode(["a query"])), atol=1e-3))
    return {"check": name, "wall_s": round(time.perf_counter() - started, 1), "loads_back_same": same, "loss": facts.loss,
            **{k: report.get(k) for k in ("steps", "pairs_per_second", "peak_gpu_mb", "device", "stopped_early")},
            "dev": report["dev"]}


def check_out_of_memory(base: BaseParams, machine: MachineSettings, work: Path) -> dict:
    """16384 pairs of 512 tokens in one batch of plain MultipleNegativesRankingLoss: far beyond any GPU."""
    rows = [{"anchor": f"query {i} " + " ".join(f"w{(i * 7 + j) % 5000}" for j in range(600)),
             "positive": f"document {i} " + " ".join(f"v{(i * 13 + j) % 5000}" for j in range(600))} for i in range(16384)]
    (work / "oom").mkdir()
    (work / "oom" / "negatives.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = TrainParams(batch_size=16384, max_seq_length=512, max_steps=1, matryoshka_dims=[])
    try:
        fine_tune(build_training_set(settings, work / "oom", settings.batch_size), None, base, settings, machine, work / "oom_checkpoints")
    except PipelineError as error:
        return {"check": "out_of_memory", "message": str(error)}
    return {"check": "out_of_memory", "message": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=Path, required=True, help="rows in negatives.jsonl format (bench/train_speed.py --save-rows)")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--random-weights", action="store_true", help="the model's architecture with random weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_gpu_check.json")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink batches and steps, e.g. 0.05 to try the script on a CPU")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="train_gpu_check_"))
    model = random_weights_model(args.model, work) if args.random_weights else resolve_model_path(args.model)
    rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
    (work / "rows").mkdir()
    (work / "rows" / "negatives.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    device = pick_device(args.device)
    base = BaseParams(model=model, seed=42)
    machine = MachineSettings(device=device, encode_batch_size=128, resume=False)  # not this machine's machine.yaml
    dev = dev_from_rows(rows, max(8, int(400 * args.scale)))
    results = [{"check": "precision", "device": device, "auto": choose_precision("auto", device),
                "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else "none"}]
    print(json.dumps(results[-1]), flush=True)
    cached_lora = dict(loss="CachedMultipleNegativesRankingLoss", batch_size=256, learning_rate=1e-4, max_steps=20, eval_steps=10,
                       lora=LoraParams(enabled=True, r=8, alpha=16, target_modules=["query", "key", "value"]))
    for name, changes, machine_changes in (("default", {}, {}),
                                           ("cached_lora_checkpointing", cached_lora,
                                            {"train_mini_batch_size": 32, "gradient_checkpointing": True})):
        results.append(check_training(name, work / "rows", dev, base, machine, work, args.scale, machine_changes, **changes))
        print(json.dumps(results[-1]), flush=True)
    if device.startswith("cuda"):
        results.append(check_out_of_memory(base, machine, work))
        print(json.dumps(results[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
