"""Fine-tuning a sentence-transformers model: the logic of the `train` stage, callable without DVC.

:func:`fine_tune` loads the base model (and the GIST guide), adds LoRA adapters when asked, builds the loss,
resumes from a compatible checkpoint, measures the base model on the dev split, trains with
SentenceTransformerTrainer and returns the model (with the best checkpoint's weights, LoRA merged, prompts
set) and the run's report. In a DDP run every process calls it; only the main process writes curves and
checkpoints, and only its returned model is complete (LoRA is merged there alone).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from transformers import EarlyStoppingCallback, TrainerCallback

import embedft.training.distributed as distributed
from embedft.config import LOSSES, BaseParams, MachineSettings, TrainParams
from embedft.core import PipelineError
from embedft.encoding import count_over_window, is_out_of_memory, load_model_with, pick_device, truncation_warning
from embedft.training.arguments import (
    check_trackers,
    choose_precision,
    out_of_memory_message,
    tracker_callbacks,
    training_arguments,
)
from embedft.training.checkpoints import describe_start, prepare_folder, resume_point, run_fingerprint
from embedft.training.data import TrainingSet
from embedft.training.lora import add_lora, merge_lora
from embedft.training.losses import build_loss, describe_loss
from embedft.training.model_card import CardFacts
from embedft.training.monitor import (
    DEV_CURVES,
    DevEvaluator,
    DevSet,
    EvaluateAtLastStep,
    LogAtCheckpoints,
    TrainingCurves,
    dev_evaluator,
    dev_metrics,
)
from embedft.training.run_report import card_facts, dev_report, mean_training_loss, run_report

logger = logging.getLogger(__name__)

BASE_DEV_FILE = "dev_base.json"
"""The base model's dev metrics, kept with the checkpoints so a resumed run still reports them."""


def load_guide(settings: TrainParams, base: BaseParams, machine: MachineSettings, device: str) -> SentenceTransformer | None:
    """The frozen guide of the GIST losses (`train.gist_guide`, or the base model), or None for other losses."""
    if not LOSSES[settings.loss].needs_guide:
        return None
    name, key = (settings.gist_guide, "train.gist_guide") if settings.gist_guide else (base.model, "base.model")
    guide = load_model_with(base, machine, name, settings.max_seq_length, key=key, device=device,
                            length_key="train.max_seq_length")
    guide.requires_grad_(False)
    return guide


def fine_tune(
    training: TrainingSet,
    dev: DevSet | None,
    base: BaseParams,
    settings: TrainParams,
    machine: MachineSettings,
    checkpoints: Path,
    curves: TrainingCurves | None = None,
    inputs: Sequence[Path] = (),
    callbacks: Sequence[TrainerCallback] = (),
) -> tuple[SentenceTransformer, dict, CardFacts]:
    """Train a copy of the base model on ``training``; return it with the metrics report and the card's facts.

    Args:
        training: the datasets for the loss (:func:`embedft.training.data.build_training_set`).
        dev: the dev IR task, or None to train without dev evaluation (the last model is kept).
        base: model, prompts, seed.
        settings: the `train` params.
        machine: device, mini-batch size, gradient checkpointing, resuming.
        checkpoints: folder for checkpoints (and the curves while training); resumed from when compatible.
        curves: records the loss, learning rate and dev metrics (see :class:`TrainingCurves`).
        inputs: files besides the training file whose content must match for a checkpoint to be resumed.
        callbacks: extra trainer callbacks.
    """
    world = distributed.world_size()
    device = distributed.process_device(pick_device(machine.device, machine.on_missing_gpu))
    choose_precision(settings.precision, device)  # an impossible precision fails before any model is loaded
    check_trackers(settings)  # so does a tracker that is not installed
    guide = load_guide(settings, base, machine, device)
    model = load_model_with(base, machine, max_seq_length=settings.max_seq_length, device=device,
                            length_key="train.max_seq_length")
    passages, truncated = count_truncated_passages(model, training, base.document_prompt)
    if distributed.is_main_process() and (warning := truncation_warning("distinct training passages", truncated, passages,
                                                                         settings.max_seq_length, "train.max_seq_length")):
        logger.warning(warning)
    if settings.lora.enabled:
        trainable, total = add_lora(model, settings.lora, machine.gradient_checkpointing)
        logger.info("LoRA adapters: %s trainable parameters of %s", f"{trainable:,}", f"{total:,}")
    loss = build_loss(model, settings, machine, guide, world)
    evaluator = dev_evaluator(dev, base, machine) if dev else None
    fingerprint = run_fingerprint(base, settings, [training.source_file, *inputs], sorted(dev.documents) if dev else ())
    start = resume_point(checkpoints, fingerprint, machine.resume)
    main_process = distributed.is_main_process()
    if main_process:
        logger.info(describe_start(checkpoints, fingerprint, machine.resume, start))
    curves = curves or TrainingCurves(checkpoints / "dvclive", write=False)
    curves.write = curves.write and main_process
    # LogAtCheckpoints follows every callback that decides to save (EvaluateAtLastStep, the trainer's own).
    stage_callbacks: list[TrainerCallback] = [curves, EvaluateAtLastStep(evaluate=evaluator is not None), *callbacks,
                                              LogAtCheckpoints()]

    early_stopping = None
    if evaluator is not None and settings.early_stopping_patience:
        early_stopping = EarlyStoppingCallback(settings.early_stopping_patience, settings.early_stopping_threshold)
        stage_callbacks.append(early_stopping)
    args = training_arguments(settings, base, machine, checkpoints, device, training, evaluator is not None, world)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=training.trainer_dataset(), loss=loss,
                                         evaluator=evaluator, callbacks=stage_callbacks)
    resumed_step = json.loads((start / "trainer_state.json").read_text())["global_step"] if start else 0
    if main_process:
        prepare_folder(checkpoints, fingerprint, keep=start is not None)
        for callback in tracker_callbacks(settings, checkpoints):  # made after the folder is prepared, which may empty it
            trainer.add_callback(callback)
        curves.start(resumed_step)
    try:
        base_dev = (measure_base_dev(evaluator, model, checkpoints, resumed_step, curves)
                    if evaluator is not None and main_process else None)
        distributed.barrier()
        eval_seconds_before = evaluator.seconds if evaluator is not None else 0.0
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    except Exception as error:
        if is_out_of_memory(error):
            raise PipelineError(out_of_memory_message(settings, machine, device)) from None
        raise
    seconds = time.perf_counter() - started
    if not math.isfinite(result.training_loss):
        raise PipelineError(f"the training loss is {result.training_loss} (training diverged); lower "
                            f"train.learning_rate (now {settings.learning_rate:g}), or use train.precision bf16 or fp32 "
                            "instead of fp16")
    state = trainer.state
    if settings.lora.enabled and main_process:
        merge_lora(model, load_model_with(base, machine, max_seq_length=settings.max_seq_length, device=device))
    if base.query_prompt or base.document_prompt:
        model.prompts = {"query": base.query_prompt, "document": base.document_prompt}
    stopped_early = (early_stopping is not None and state.global_step < state.max_steps
                     and early_stopping.early_stopping_patience_counter >= settings.early_stopping_patience)
    report = run_report(
        training, state, settings, device=device, world_size=world, resumed_step=resumed_step,
        training_loss=mean_training_loss(state.log_history, resumed_step, state.global_step, result.training_loss),
        stopped_early=stopped_early, seconds=seconds,
        eval_seconds=evaluator.seconds - eval_seconds_before if evaluator is not None else 0.0,
        dev=dev_report(dev, state, base_dev) if dev is not None else None,
    )
    report.update(training_passages=passages, truncated_passages=truncated)
    facts = card_facts(report, training, base, settings, describe_loss(loss), list(getattr(loss, "matryoshka_dims", [])))
    return model, report, facts


def count_truncated_passages(model: SentenceTransformer, training: TrainingSet, prompt: str) -> tuple[int, int]:
    """(distinct passages in the training data, how many of them exceed the model's window with ``prompt``).

    Passages are every text column but the anchor (positives, negatives, scored texts).
    """
    passages = sorted({text for dataset in training.datasets.values() for column in dataset.column_names
                       if column != "anchor" and getattr(dataset.features[column], "dtype", None) == "string"
                       for text in dataset[column]})
    return len(passages), count_over_window(model, passages, prompt)


def measure_base_dev(evaluator: DevEvaluator, model: SentenceTransformer, checkpoints: Path, resumed_step: int,
                     curves: TrainingCurves) -> dict:
    """The base model's dev metrics, drawn at step 0 of the dev curves; a resumed run reads the stored ones."""
    stored = checkpoints / BASE_DEV_FILE
    if resumed_step and stored.is_file():
        return json.loads(stored.read_text(encoding="utf-8"))
    scores = evaluator(model)
    metrics = dev_metrics(scores, prefix="")
    stored.write_text(json.dumps(metrics, sort_keys=True) + "\n", encoding="utf-8")
    curves.record(0, {name: scores[key.removeprefix("eval_")] for name, key in DEV_CURVES.items()})
    logger.info("base model on the dev split: %s", metrics)
    return metrics
