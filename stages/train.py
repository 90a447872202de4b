"""Stage `train`: fine-tune the base model with the loss named by `train.loss` (MultipleNegativesRankingLoss in
MatryoshkaLoss by default), watching the dev split.

``python -m stages.train [--round N]`` reads round N's mined rows (``negatives.jsonl``, or ``scored.jsonl`` for
the losses that learn from teacher scores; see embedft/config/losses.py), evaluates on the dev split every
`train.eval_steps` while checkpointing to ``.checkpoints/`` (outside the DVC output), keeps the checkpoint
with the best dev nDCG@10 and stops early when it stops improving. The model is saved atomically, with its
prompts and model card; the curves (loss, learning rate, dev metrics) go to ``plots/train/``, the pairs and steps
to ``metrics/train.json``, the rest of the run's figures to ``reports/train.json``, and its seconds and memory to
``logs/train.json`` (they differ between identical runs, so they are neither a metric nor a DVC output).

The same command runs unchanged under ``torchrun --nproc_per_node N`` or ``accelerate launch`` (DDP): each
process trains on its share of the batches, in-batch negatives are gathered from all of them, and only
the main process writes outputs.
"""

from __future__ import annotations

import shutil

from sentence_transformers import SentenceTransformer

from embedft.config import load_machine, load_params
from embedft.core import artifacts, atomic_path, run_stage, write_json_atomic
from embedft.core.artifacts import BASE_EMBEDDINGS_DIR, CORPUS_FILE, SPLIT_DIR, RoundPaths
from embedft.training import (
    CandidatePool,
    CardFacts,
    TrainingCurves,
    build_training_set,
    check_settings,
    distributed,
    fine_tune,
    load_dev_set,
    save_model,
    score_warning,
    split_run_measurements,
)


def save_outputs(model: SentenceTransformer, report: dict, facts: CardFacts, curves: TrainingCurves, paths: RoundPaths) -> None:
    """Write the model with its card (its files free of the environment's traces, see :func:`save_model`), the
    curves, the metrics, the report and the run log, each atomically (main process only)."""
    facts.model_path = str(paths.model)
    with atomic_path(paths.model, is_dir=True) as out:
        save_model(model, out, facts)
    curves.publish(paths.train_plots)
    metrics, kept, run = split_run_measurements(report)
    write_json_atomic(paths.train_metrics, metrics)
    write_json_atomic(paths.train_report, kept)
    write_json_atomic(paths.train_log, run)


def main(argv: list[str] | None = None) -> None:
    paths = artifacts.parse_round(argv)
    params, machine = load_params(), load_machine()
    base, settings = params.base, params.train
    check_settings(settings, paths.negatives)
    training = build_training_set(settings, paths.negatives, min_group_size=settings.batch_size)
    if warning := score_warning(training):
        print(f"train: warning: {warning}")
    pool = (CandidatePool(BASE_EMBEDDINGS_DIR, base, machine, settings.dev_pool_k, params.bm25)
            if settings.dev_pool == "candidates" else None)
    dev = load_dev_set(SPLIT_DIR, CORPUS_FILE, settings.dev_max_documents, base.seed, pool)
    if dev is None:
        print("train: the dev split has no judged query: no dev evaluation, early stopping or best-checkpoint choice")
    curves = TrainingCurves(paths.checkpoints / "dvclive")
    inputs = [SPLIT_DIR / "dev" / "queries.jsonl", SPLIT_DIR / "dev" / "qrels.tsv", CORPUS_FILE] if dev else []
    model, report, facts = fine_tune(training, dev, base, settings, machine, paths.checkpoints, curves, inputs)
    distributed.barrier()
    if distributed.is_main_process():
        save_outputs(model, report, facts, curves, paths)
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        dev = report.get("dev") or {}
        best = (f"; dev nDCG@10 {dev['base']['ndcg@10']:.4f} (base) -> {dev['best']['ndcg@10']:.4f} (step {dev['best_step']}) "
                f"over {dev['documents']} of {dev['corpus_documents']} documents ({dev['searched']})") \
            if dev.get("base") and dev.get("best") else ""
        print(f"train: {report['steps']} steps on {report['pairs']} pairs, loss {report['train_loss']:.4f}{best}; "
              f"{report['pairs_per_second']:.2f} pairs/s on {report['device']} (run log: {paths.train_log})")
    distributed.finish()


if __name__ == "__main__":
    run_stage(main)
