"""What a training run reports: its metrics (pairs and steps), its full report, the measurements of the run
(seconds, memory), and the facts of the model card."""

from __future__ import annotations

import torch
from transformers import TrainerState

import embedft.training.distributed as distributed
from embedft.config import BaseParams, TrainParams
from embedft.core import peak_rss_mb
from embedft.training.data import TrainingSet
from embedft.training.model_card import CardFacts, non_default_params
from embedft.training.monitor import BEST_MODEL_METRIC, DevSet, dev_metrics


def dev_history(log_history: list[dict], step: int | None) -> dict[str, float] | None:
    """Dev metrics logged at ``step`` (the last evaluation when None), or None if there was none."""
    evaluations = [entry for entry in log_history if f"eval_{BEST_MODEL_METRIC}" in entry]
    if step is not None:
        evaluations = [entry for entry in evaluations if entry["step"] == step]
    return dev_metrics(evaluations[-1]) if evaluations else None


def dev_report(dev: DevSet, state: TrainerState, base_dev: dict[str, float] | None) -> dict:
    """Dev metrics of the base model, of the best evaluation and of the last, with their steps."""
    best_step = state.best_global_step or state.global_step
    report = {
        "queries": len(dev.queries), "documents": len(dev.documents), "searched": dev.searched,
        "corpus_documents": dev.corpus_documents,
        "best": dev_history(state.log_history, best_step), "best_step": best_step,
        "final": dev_history(state.log_history, None), "final_step": state.global_step,
    }
    if base_dev:
        report["base"] = base_dev
    return report


def mean_training_loss(log_history: list[dict], resumed_step: int, global_step: int, loss_since_resume: float) -> float:
    """The mean loss per optimizer step over the whole run, whether or not it was resumed.

    The trainer's ``training_loss`` averages the steps of its own ``train()`` call only, so after resuming from
    step ``resumed_step`` it leaves out every step before. Those steps are in the checkpoint's log history: each
    logged ``loss`` is the mean over the steps since the previous log, and
    :class:`embedft.training.monitor.LogAtCheckpoints` logs at every checkpoint, so the history reaches the
    resumed step. The result is their step-weighted sum plus ``loss_since_resume`` times the steps run since,
    over all steps: the uninterrupted run's ``training_loss`` to rounding. A run that was not resumed keeps
    ``loss_since_resume`` as it is.
    """
    if not resumed_step:
        return loss_since_resume
    total, covered = 0.0, 0
    for entry in log_history:
        if "loss" in entry and covered < entry["step"] <= resumed_step:
            total += entry["loss"] * (entry["step"] - covered)
            covered = entry["step"]
    run = global_step - resumed_step
    return (total + loss_since_resume * run) / max(covered + run, 1)


def peak_memory_mb(device: str) -> dict[str, float]:
    """Peak resident memory of the process (and peak allocated GPU memory), the largest over all processes.

    ``peak_rss_mb`` is left out where the platform does not measure it (:func:`embedft.core.peak_rss_mb`).
    """
    peak = {}
    rss = peak_rss_mb()
    if rss is not None:  # the same platform in every process, so all of them take this branch or none
        peak["peak_rss_mb"] = round(distributed.max_over_processes(rss), 1)
    if device.startswith("cuda"):
        peak["peak_gpu_mb"] = round(distributed.max_over_processes(torch.cuda.max_memory_allocated() / 2**20), 1)
    return peak


def run_report(
    training: TrainingSet, state: TrainerState, settings: TrainParams, *, device: str, world_size: int, resumed_step: int,
    training_loss: float, stopped_early: bool, seconds: float, eval_seconds: float, dev: dict | None,
) -> dict:
    """Everything a training run reports; :func:`split_run_measurements` parts it into the report and the run log.

    ``pairs_seen`` counts optimizer steps times pairs per step (batch size x accumulation x processes), an upper
    bound when a group's last batch is partial. ``pairs_per_second`` is this run's pairs over its wall time
    without dev evaluation (a resumed run counts from its checkpoint). ``training_loss`` is the mean over every
    step (:func:`mean_training_loss`). The fields in :data:`RUN_MEASUREMENTS`
    differ from run to run; every other field is the same for the same inputs.
    """
    effective_batch = settings.batch_size * settings.gradient_accumulation_steps * world_size
    pairs_this_run = (state.global_step - resumed_step) * effective_batch
    report = {
        "pairs": training.pairs,
        "pairs_by_source": training.pairs_by_source,
        "skipped_rows": training.skipped_rows,
        "examples": training.examples,
        "dropped_examples": training.dropped_examples,
        "steps": state.global_step,
        "epochs": round(float(state.epoch or 0.0), 4),
        "effective_batch_size": effective_batch,
        "pairs_seen": state.global_step * effective_batch,
        "world_size": world_size,
        "resumed_from_step": resumed_step,
        "stopped_early": int(stopped_early),
        "train_loss": round(float(training_loss), 6),
        "train_seconds": round(seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "pairs_per_second": round(pairs_this_run / max(seconds - eval_seconds, 1e-9), 2),
        **peak_memory_mb(device),
        "device": device,
    }
    if dev is not None:
        report["dev"] = dev
    return report


RUN_MEASUREMENTS = ("resumed_from_step", "train_seconds", "eval_seconds", "pairs_per_second", "peak_rss_mb", "peak_gpu_mb",
                    "device")
"""Fields of a run's report that describe the run, not its result: they differ between identical runs (or between
machines), so they go to the run log, never to a metrics or report file."""
SUMMARY = ("pairs", "steps")
"""The fields a reviewer compares: metrics/train.json."""


def split_run_measurements(report: dict) -> tuple[dict, dict, dict]:
    """(metrics, report, run log) of a training run's :func:`run_report`."""
    kept = {key: value for key, value in report.items() if key not in RUN_MEASUREMENTS}
    return ({key: report[key] for key in SUMMARY}, kept,
            {key: report[key] for key in RUN_MEASUREMENTS if key in report})


def card_facts(report: dict, training: TrainingSet, base: BaseParams, settings: TrainParams, loss_description: str,
               matryoshka_dims: list[int]) -> CardFacts:
    """The model card's facts from the run's report and settings."""
    dev = report.get("dev")
    return CardFacts(
        base_model=base.model, model_path="", source_file=str(training.source_file),
        pairs_by_source=training.pairs_by_source, examples=training.examples, loss=loss_description,
        steps=report["steps"], epochs=report["epochs"], effective_batch_size=report["effective_batch_size"],
        non_default=non_default_params(base, settings), query_prompt=base.query_prompt,
        document_prompt=base.document_prompt, matryoshka_dims=matryoshka_dims, lora=settings.lora.enabled,
        dev={**dev, "stopped_early": report["stopped_early"], "kept": "best" if settings.keep_best else "final"} if dev else None,
    )
