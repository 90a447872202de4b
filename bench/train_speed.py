"""Training throughput of the `train` stage against the plain sentence-transformers recipe, in one process.

Recipes, each trained for the same number of optimizer steps on the same pairs with the same batch size,
learning rate, warm-up and sequence length:

- ``plain``: the tutorial recipe: ``SentenceTransformerTrainer`` with MultipleNegativesRankingLoss on
  (anchor, positive) pairs, batch 32, default batch sampler, no hard negatives, no Matryoshka;
- ``stage``: this project's :func:`embedft.training.fine_tune` with the shipped defaults: one mined hard
  negative per pair, MultipleNegativesRankingLoss inside MatryoshkaLoss (384/256/128/64), NO_DUPLICATES
  batches (no dev split here, so no dev evaluation);
- ``stage_pairs_only``: the same function on the plain recipe's work (no negatives, no Matryoshka): what the
  stage's machinery itself costs.

Throughput is pairs per second of ``trainer.train()`` wall time (steps x batch size / seconds). The recipes
alternate, in a rotating order, for ``--rounds`` rounds, and each recipe's median is compared with the plain
median, so the ratio comes from one process and one session. The pairs are SciFact's labelled train pairs;
each gets one BM25 hard negative from the rank window [10, 50) (the miner's default window; which negative is
picked does not change the cost of a step).

    nice python bench/train_speed.py --scifact ../shared/bench/scifact   # CPU
    python bench/train_speed.py --rows bench/work/train_speed/negatives.jsonl --random-weights  # e.g. on a GPU box
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer import losses

from embedft.config import BaseParams, MachineSettings, TrainParams
from embedft.encoding import pick_device, resolve_model_path
from embedft.training import build_training_set, fine_tune

ROOT = Path(__file__).resolve().parents[1]

RECIPES = ("plain", "stage", "stage_pairs_only")


def scifact_rows(folder: Path, range_min: int = 10, range_max: int = 50) -> list[dict]:
    """SciFact's labelled train pairs, each with one BM25 negative from ranks [range_min, range_max)."""
    import bm25s

    from embedft.core import read_corpus, read_qrels, read_queries

    corpus = read_corpus(folder / "corpus.jsonl")
    queries = read_queries(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels" / "train.tsv")
    doc_ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([corpus[d].full_text for d in doc_ids], show_progress=False), show_progress=False)
    query_ids = sorted(qrels)
    ranked, _ = retriever.retrieve(bm25s.tokenize([queries[q] for q in query_ids], show_progress=False), k=range_max,
                                   show_progress=False)
    rows = []
    for query_id, ranking in zip(query_ids, ranked.tolist()):
        positives = {d for d, score in qrels[query_id].items() if score > 0}
        window = [doc_ids[i] for i in ranking[range_min:range_max] if doc_ids[i] not in positives]
        for doc_id in sorted(positives):
            rows.append({"anchor": queries[query_id], "positive": corpus[doc_id].full_text, "source": "labelled",
                         **({"negative_1": corpus[window[0]].full_text} if window else {})})
    return rows


def random_weights_model(name: str, folder: Path) -> str:
    """The architecture and tokenizer of ``name`` with freshly initialised weights (for throughput only: a
    machine that cannot hold the real weights still runs the same computation)."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source = resolve_model_path(name)
    torch.manual_seed(0)
    raw = folder / "raw"
    AutoModel.from_config(AutoConfig.from_pretrained(source)).save_pretrained(raw)
    AutoTokenizer.from_pretrained(source).save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=256)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()])
    model.save(str(folder / "model"))
    return str(folder / "model")


def run_plain(rows: list[dict], model_name: str, device: str, args: argparse.Namespace, workdir: Path) -> dict:
    """The tutorial recipe; returns steps, pairs and seconds of trainer.train()."""
    model = SentenceTransformer(model_name, device=device)
    model.max_seq_length = args.max_seq_length
    dataset = Dataset.from_dict({"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]})
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir / "plain"), per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_steps=0.1, max_steps=args.steps, seed=42, save_strategy="no", report_to="none", logging_steps=10_000,
        use_cpu=device == "cpu", bf16=device.startswith("cuda") and torch.cuda.is_bf16_supported(), disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=dataset,
                                         loss=losses.MultipleNegativesRankingLoss(model))
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    return {"steps": result.global_step, "pairs": result.global_step * args.batch_size, "seconds": seconds}


def run_stage(rows: list[dict], model_name: str, device: str, args: argparse.Namespace, workdir: Path, pairs_only: bool) -> dict:
    """The stage's training function on ``rows`` (without their negatives and Matryoshka when ``pairs_only``)."""
    folder = workdir / ("stage_pairs_only" if pairs_only else "stage")
    shutil.rmtree(folder, ignore_errors=True)
    kept = [{k: v for k, v in r.items() if not (pairs_only and k.startswith("negative_"))} for r in rows]
    (folder / "negatives").mkdir(parents=True)
    (folder / "negatives" / "negatives.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    settings = TrainParams(batch_size=args.batch_size, learning_rate=args.learning_rate, max_seq_length=args.max_seq_length,
                           max_steps=args.steps, logging_steps=10_000, **({"matryoshka_dims": []} if pairs_only else {}))
    base = BaseParams(model=model_name, seed=42)
    machine = MachineSettings(device=device, resume=False)  # the defaults otherwise, not this machine's machine.yaml
    training = build_training_set(settings, folder / "negatives", min_group_size=settings.batch_size)
    _, report, _ = fine_tune(training, None, base, settings, machine, folder / "checkpoints")
    return {"steps": report["steps"], "pairs": report["pairs_seen"], "seconds": report["train_seconds"],
            "examples_with_negative": training.negatives_per_example.get("1", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scifact", type=Path, default=Path("../shared/bench/scifact"), help="SciFact in BEIR layout")
    parser.add_argument("--rows", type=Path, help="read the rows (negatives.jsonl format) from this file instead")
    parser.add_argument("--save-rows", type=Path, help="write the rows built from SciFact here (to carry elsewhere)")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--random-weights", action="store_true", help="the model's architecture with random weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_speed.json")
    parser.add_argument("--note", default="", help="conditions worth recording (e.g. other jobs sharing the machine)")
    args = parser.parse_args()

    rows = ([json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
            if args.rows else scifact_rows(args.scifact))
    if args.save_rows:
        args.save_rows.parent.mkdir(parents=True, exist_ok=True)
        args.save_rows.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    device = pick_device(args.device)
    workdir = Path(tempfile.mkdtemp(prefix="train_speed_"))
    model_name = random_weights_model(args.model, workdir) if args.random_weights else resolve_model_path(args.model)

    def run(recipe: str) -> dict:
        if recipe == "plain":
            return run_plain(rows, model_name, device, args, workdir)
        return run_stage(rows, model_name, device, args, workdir, pairs_only=recipe == "stage_pairs_only")

    warm = argparse.Namespace(**{**vars(args), "steps": 2})
    run_plain(rows, model_name, device, warm, workdir)  # first-use costs (allocator, thread pools) land here, untimed
    runs = []
    for number in range(args.rounds):
        order = RECIPES[number % 3:] + RECIPES[:number % 3]  # rotate, so no recipe always runs first
        for recipe in order:
            load_before = os.getloadavg()[0]
            result = run(recipe)
            result.update(recipe=recipe, round=number, pairs_per_second=round(result["pairs"] / result["seconds"], 3),
                          seconds=round(result["seconds"], 2), load_average_before=round(load_before, 2),
                          load_average_after=round(os.getloadavg()[0], 2))
            runs.append(result)
            print(json.dumps(result), flush=True)
    medians = {recipe: statistics.median(r["pairs_per_second"] for r in runs if r["recipe"] == recipe) for recipe in RECIPES}
    report = {
        "command": " ".join(["python", "bench/train_speed.py", *sys.argv[1:]]),
        "note": args.note,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
                    "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else "none",
                    "python": platform.python_version(), "torch": torch.__version__,
                    "sentence_transformers": __import__("sentence_transformers").__version__},
        "settings": {"model": args.model, "random_weights": args.random_weights, "rows": len(rows),
                     "rows_with_negative": sum("negative_1" in r for r in rows), "steps": args.steps,
                     "rounds": args.rounds, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                     "max_seq_length": args.max_seq_length},
        "runs": runs,
        "median_pairs_per_second": {k: round(v, 3) for k, v in medians.items()},
        "ratio_vs_plain": {k: round(medians[k] / medians["plain"], 3) for k in RECIPES if k != "plain"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"median_pairs_per_second": report["median_pairs_per_second"], "ratio_vs_plain": report["ratio_vs_plain"]}))


if __name__ == "__main__":
    main()
