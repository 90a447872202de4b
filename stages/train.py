"""Stage `train`: fine-tune the base model with the loss named by `train.loss` (MultipleNegativesRankingLoss in
MatryoshkaLoss by default), watching the dev split.

``python -m stages.train [--round N]`` reads round N's mined rows (``negatives.jsonl``, or ``scored.jsonl`` for
the losses that learn from teacher scores; see stages/train_data.py), evaluates on the dev split every
`train.eval_steps` while checkpointing to ``.checkpoints/`` (outside the DVC output), keeps the checkpoint
with the best dev nDCG@10 and stops early when it stops improving. The model is saved atomically, with its
prompts and model card; the curves (loss, learning rate, dev metrics) go to ``plots/train/`` in dvclive's
format, the run's figures to ``metrics/train.json``.

The same command runs unchanged under ``torchrun --nproc_per_node N`` or ``accelerate launch`` (DDP): each
process trains on its share of the batches, in-batch negatives are gathered from all of them, and only
the main process writes outputs.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from transformers import EarlyStoppingCallback, TrainerCallback

from stages import distributed
from stages.atomic import atomic_path, write_json_atomic
from stages.checkpoints import describe_start, prepare_folder, resume_point, run_fingerprint
from stages.errors import PipelineError, run_stage
from stages.lora import add_lora, merge_lora
from stages.model_card import CardFacts, non_default_params, write_model_card
from stages.models import is_out_of_memory, load_model, pick_device
from stages.params import BaseParams, TrainParams, load_params
from stages.paths import CORPUS_FILE, SPLIT_DIR, RoundPaths, parse_round
from stages.train_data import LOSS_INPUTS, TrainingSet, build_training_set, check_settings
from stages.train_losses import GUIDED_LOSSES, build_loss, describe_loss
from stages.train_monitor import (BEST_MODEL_METRIC, DEV_CURVES, DevSet, EvaluateAtLastStep, TrainingCurves, dev_evaluator,
                                  dev_metrics, load_dev_set)

LABEL_COLUMNS = ("label", "score")
BASE_DEV_FILE = "dev_base.json"
"""The base model's dev metrics, kept with the checkpoints so a resumed run still reports them."""


def choose_precision(setting: str, device: str) -> dict[str, bool]:
    """Trainer flags for mixed precision.

    'auto' is bf16 on a CUDA GPU that supports it, fp16 on an older one, fp32 elsewhere. An explicit 'bf16'
    is honoured on the CPU too (autocast); 'fp16' needs CUDA and falls back to fp32 elsewhere, with a note.

    Raises:
        PipelineError: 'bf16' on a CUDA GPU without bf16 support (e.g. T4, V100).
    """
    cuda = device.startswith("cuda")
    if setting == "fp32" or (setting == "auto" and not cuda):
        return {"bf16": False, "fp16": False}
    if setting == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise PipelineError("params.yaml: train.precision is bf16, but this GPU does not support bf16; use fp16 or auto")
        if device.startswith("mps"):
            print("train: precision 'bf16' is not used on mps; training in fp32")
            return {"bf16": False, "fp16": False}
        return {"bf16": True, "fp16": False}
    if setting == "fp16" and not cuda:
        print(f"train: precision 'fp16' needs a CUDA GPU; using fp32 on {device}")
        return {"bf16": False, "fp16": False}
    if setting == "auto" and torch.cuda.is_bf16_supported():
        return {"bf16": True, "fp16": False}
    return {"bf16": False, "fp16": True}


def prompts_for(columns: Sequence[str], base: BaseParams) -> dict[str, str] | None:
    """Per-column prompts: the query prompt for anchors, the document prompt for every other text column."""
    if not (base.query_prompt or base.document_prompt):
        return None
    return {c: (base.query_prompt if c == "anchor" else base.document_prompt) for c in columns if c not in LABEL_COLUMNS}


def out_of_memory_message(settings: TrainParams, device: str) -> str:
    """What to change when training runs out of accelerator memory."""
    if settings.loss.startswith("Cached"):
        first = (f"lower train.mini_batch_size (now {settings.mini_batch_size}; try {max(1, settings.mini_batch_size // 2)}): "
                 f"{settings.loss} keeps the batch of {settings.batch_size} at the memory of one mini-batch")
    else:
        first = ("use train.loss: CachedMultipleNegativesRankingLoss (or CachedGISTEmbedLoss) with a smaller "
                 f"train.mini_batch_size (e.g. {max(1, min(32, settings.batch_size // 4))}): it keeps all "
                 f"{settings.batch_size} in-batch negatives at the memory of one mini-batch")
    return (f"train: out of memory on {device} (train.batch_size {settings.batch_size}, train.max_seq_length "
            f"{settings.max_seq_length}). {first}; or lower train.batch_size and raise train.gradient_accumulation_steps "
            "(same pairs per step, but MultipleNegativesRankingLoss then sees fewer in-batch negatives); "
            "train.gradient_checkpointing: true and a lower train.max_seq_length also cut memory")


def training_arguments(
    settings: TrainParams, base: BaseParams, output_dir: Path, device: str, training: TrainingSet, evaluate: bool
) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments: every value comes from params or from what the run has (dev split, device)."""
    columns = sorted({c for d in training.datasets.values() for c in d.column_names})
    single = len(training.datasets) == 1
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # transformers 5 reads a float below 1 as a ratio
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        **checkpointing_flag(settings.gradient_checkpointing),
        seed=base.seed,
        data_seed=base.seed,
        # In-batch negatives must not repeat a text of the batch (it would be a false negative); losses without
        # them get plain seeded random batches. Groups of different negative counts are sampled in proportion
        # to their sizes, so every example is used once per epoch.
        batch_sampler="no_duplicates" if LOSS_INPUTS[settings.loss].in_batch_negatives else "batch_sampler",
        multi_dataset_batch_sampler="proportional",
        prompts=prompts_for(columns, base),
        eval_strategy="steps" if evaluate else "no",
        eval_steps=settings.eval_steps,
        save_strategy="steps",
        save_steps=settings.eval_steps,
        save_total_limit=2,  # the last checkpoint (to resume) and the best (to keep)
        load_best_model_at_end=evaluate and settings.keep_best,
        metric_for_best_model=BEST_MODEL_METRIC if evaluate else None,
        greater_is_better=True,
        logging_steps=settings.logging_steps,
        logging_first_step=True,  # every curve starts at step 1, however short the run
        report_to="none",  # no automatic integrations; the curves come only from TrainingCurves
        use_cpu=device == "cpu",
        dataloader_drop_last=single and training.examples > settings.batch_size,
        **choose_precision(settings.precision, device),
    )


def checkpointing_flag(enabled: bool) -> dict[str, bool]:
    """The trainer's activation (gradient) checkpointing switch, under its name in the installed transformers
    (``activation_checkpointing`` since 5.x; ``gradient_checkpointing`` before, now a deprecated alias)."""
    names = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def load_guide(settings: TrainParams, base: BaseParams, device: str) -> SentenceTransformer | None:
    """The frozen guide of the GIST losses (`train.gist_guide`, or the base model), or None for other losses."""
    if settings.loss not in GUIDED_LOSSES:
        return None
    name = settings.gist_guide or base.model
    try:
        guide = load_model(name, device, settings.max_seq_length)
    except PipelineError as error:
        raise PipelineError(f"params.yaml: train.gist_guide: {error}") from None
    guide.requires_grad_(False)
    return guide


def dev_history(log_history: list[dict], step: int | None) -> dict[str, float] | None:
    """Dev metrics logged at ``step`` (the last evaluation when None), or None if there was none."""
    evaluations = [entry for entry in log_history if f"eval_{BEST_MODEL_METRIC}" in entry]
    if step is not None:
        evaluations = [entry for entry in evaluations if entry["step"] == step]
    return dev_metrics(evaluations[-1]) if evaluations else None


def peak_memory_mb(device: str) -> dict[str, float]:
    """Peak resident memory of the process (and peak allocated GPU memory), the largest over all processes."""
    peak = {"peak_rss_mb": round(distributed.max_over_processes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), 1)}
    if device.startswith("cuda"):
        peak["peak_gpu_mb"] = round(distributed.max_over_processes(torch.cuda.max_memory_allocated() / 2**20), 1)
    return peak


def fine_tune(
    training: TrainingSet,
    dev: DevSet | None,
    base: BaseParams,
    settings: TrainParams,
    checkpoints: Path,
    curves: TrainingCurves | None = None,
    inputs: Sequence[Path] = (),
    callbacks: Sequence[TrainerCallback] = (),
) -> tuple[SentenceTransformer, dict, CardFacts]:
    """Train a copy of the base model on ``training``; return it with the metrics report and the card's facts.

    Args:
        training: the datasets for the loss (:func:`stages.train_data.build_training_set`).
        dev: the dev IR task, or None to train without dev evaluation (the last model is kept).
        base: model, prompts, seed, device.
        settings: the `train` params.
        checkpoints: folder for checkpoints (and the curves while training); resumed from when compatible.
        curves: records the loss, learning rate and dev metrics (see :class:`TrainingCurves`).
        inputs: files besides the training file whose content must match for a checkpoint to be resumed.
        callbacks: extra trainer callbacks.
    """
    world = distributed.world_size()
    device = distributed.process_device(pick_device(base.device))
    choose_precision(settings.precision, device)  # an impossible precision fails before any model is loaded
    guide = load_guide(settings, base, device)
    model = load_model(base.model, device, settings.max_seq_length)
    if settings.lora.enabled:
        trainable, total = add_lora(model, settings.lora, settings.gradient_checkpointing)
        print(f"train: LoRA adapters: {trainable:,} trainable parameters of {total:,}")
    loss = build_loss(model, settings, guide, world)
    evaluator = dev_evaluator(dev, base) if dev else None
    fingerprint = run_fingerprint(base, settings, [training.source_file, *inputs])
    start = resume_point(checkpoints, fingerprint, settings.resume)
    main_process = distributed.is_main_process()
    if main_process:
        print(describe_start(checkpoints, fingerprint, settings.resume, start))
    curves = curves or TrainingCurves(checkpoints / "dvclive", write=False)
    curves.write = curves.write and main_process
    stage_callbacks: list[TrainerCallback] = [curves, EvaluateAtLastStep(evaluate=evaluator is not None), *callbacks]
    early_stopping = None
    if evaluator is not None and settings.early_stopping_patience:
        early_stopping = EarlyStoppingCallback(settings.early_stopping_patience, settings.early_stopping_threshold)
        stage_callbacks.append(early_stopping)
    args = training_arguments(settings, base, checkpoints, device, training, evaluate=evaluator is not None)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=training.trainer_dataset(), loss=loss,
                                         evaluator=evaluator, callbacks=stage_callbacks)
    resumed_step = json.loads((start / "trainer_state.json").read_text())["global_step"] if start else 0
    if main_process:
        prepare_folder(checkpoints, fingerprint, keep=start is not None)
        curves.start(resumed_step)
    base_dev = None
    if evaluator is not None:
        base_dev = measure_base_dev(evaluator, model, checkpoints, resumed_step, curves) if main_process else None
    distributed.barrier()
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    except Exception as error:
        if is_out_of_memory(error):
            raise PipelineError(out_of_memory_message(settings, device)) from None
        raise
    seconds = time.perf_counter() - started
    state = trainer.state
    if settings.lora.enabled and main_process:
        merge_lora(model, load_model(base.model, device, settings.max_seq_length))
    if base.query_prompt or base.document_prompt:
        model.prompts = {"query": base.query_prompt, "document": base.document_prompt}
    effective_batch = settings.batch_size * settings.gradient_accumulation_steps * world
    eval_seconds = evaluator.seconds if evaluator is not None else 0.0
    pairs_this_run = (state.global_step - resumed_step) * effective_batch
    report = {
        "pairs": training.pairs,
        "pairs_by_source": training.pairs_by_source,
        "skipped_rows": training.skipped_rows,
        "examples": training.examples,
        "steps": state.global_step,
        "epochs": round(float(state.epoch or 0.0), 4),
        "effective_batch_size": effective_batch,
        "pairs_seen": state.global_step * effective_batch,
        "world_size": world,
        "resumed_from_step": resumed_step,
        "stopped_early": int(early_stopping is not None and state.global_step < state.max_steps
                             and early_stopping.early_stopping_patience_counter >= settings.early_stopping_patience),
        "train_loss": round(float(result.training_loss), 6),
        "train_seconds": round(seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "pairs_per_second": round(pairs_this_run / max(seconds - eval_seconds, 1e-9), 2),
        **peak_memory_mb(device),
        "device": device,
    }
    dev_report = None
    if dev is not None:
        best_step = state.best_global_step or state.global_step
        dev_report = {
            "queries": len(dev.queries), "documents": len(dev.documents), "corpus_documents": dev.corpus_documents,
            "best": dev_history(state.log_history, best_step), "best_step": best_step,
            "final": dev_history(state.log_history, None), "final_step": state.global_step,
            **({"base": base_dev} if base_dev else {}),
        }
        report["dev"] = dev_report
    facts = CardFacts(
        base_model=base.model, model_path="", source_file=str(training.source_file), pairs_by_source=training.pairs_by_source,
        examples=training.examples, loss=describe_loss(loss), steps=state.global_step, epochs=float(state.epoch or 0.0),
        effective_batch_size=effective_batch, non_default=non_default_params(base, settings),
        query_prompt=base.query_prompt, document_prompt=base.document_prompt,
        matryoshka_dims=list(loss.matryoshka_dims) if hasattr(loss, "matryoshka_dims") else [],
        lora=settings.lora.enabled,
        dev={**dev_report, "stopped_early": report["stopped_early"], "kept": "best" if settings.keep_best else "final"} if dev_report else None,
    )
    return model, report, facts


def measure_base_dev(evaluator, model: SentenceTransformer, checkpoints: Path, resumed_step: int, curves: TrainingCurves) -> dict:
    """The base model's dev metrics, drawn at step 0 of the dev curves; a resumed run reads the stored ones."""
    stored = checkpoints / BASE_DEV_FILE
    if resumed_step and stored.is_file():
        return json.loads(stored.read_text(encoding="utf-8"))
    scores = evaluator(model)
    metrics = dev_metrics(scores, prefix="")
    stored.write_text(json.dumps(metrics, sort_keys=True) + "\n", encoding="utf-8")
    curves.record(0, {name: scores[key.removeprefix("eval_")] for name, key in DEV_CURVES.items()})
    print(f"train: base model on the dev split: {metrics}")
    return metrics


def save_outputs(model: SentenceTransformer, report: dict, facts: CardFacts, curves: TrainingCurves, paths: RoundPaths) -> None:
    """Write the model with its card, the curves and the metrics, each atomically (main process only)."""
    facts.model_path = str(paths.model)
    with atomic_path(paths.model, is_dir=True) as out:
        model.save(str(out), safe_serialization=True, create_model_card=False)
        write_model_card(out, facts)
    curves.publish(paths.plots / "train")
    write_json_atomic(paths.metrics / "train.json", report)


def main(argv: list[str] | None = None) -> None:
    paths = parse_round(argv)
    params = load_params()
    base, settings = params.base, params.train
    check_settings(settings, paths.negatives)
    training = build_training_set(settings, paths.negatives, min_group_size=settings.batch_size)
    dev = load_dev_set(SPLIT_DIR, CORPUS_FILE, settings.dev_max_documents, base.seed)
    if dev is None:
        print("train: the dev split has no judged query: no dev evaluation, early stopping or best-checkpoint choice")
    curves = TrainingCurves(paths.checkpoints / "dvclive")
    inputs = [SPLIT_DIR / "dev" / "queries.jsonl", SPLIT_DIR / "dev" / "qrels.tsv", CORPUS_FILE] if dev else []
    model, report, facts = fine_tune(training, dev, base, settings, paths.checkpoints, curves, inputs)
    distributed.barrier()
    if distributed.is_main_process():
        save_outputs(model, report, facts, curves, paths)
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        print(f"train: {report}")
    distributed.finish()


if __name__ == "__main__":
    run_stage(main)
