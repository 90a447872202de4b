"""The trainer's arguments from params: precision, prompts, batching, schedule, dev evaluation and checkpoints."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformerTrainingArguments

from embedft.config import LOSSES, BaseParams, MachineSettings, TrainParams
from embedft.core import PipelineError
from embedft.training.data import TrainingSet
from embedft.training.monitor import BEST_MODEL_METRIC
from embedft.training.sampler import AlignedProportionalBatchSampler

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("label", "score")


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
            logger.info("precision 'bf16' is not used on mps; training in fp32")
            return {"bf16": False, "fp16": False}
        return {"bf16": True, "fp16": False}
    if setting == "fp16" and not cuda:
        logger.info("precision 'fp16' needs a CUDA GPU; using fp32 on %s", device)
        return {"bf16": False, "fp16": False}
    if setting == "auto" and torch.cuda.is_bf16_supported():
        return {"bf16": True, "fp16": False}
    return {"bf16": False, "fp16": True}


def prompts_for(columns: Sequence[str], base: BaseParams) -> dict[str, str] | None:
    """Per-column prompts: the query prompt for anchors, the document prompt for every other text column."""
    if not (base.query_prompt or base.document_prompt):
        return None
    return {c: (base.query_prompt if c == "anchor" else base.document_prompt) for c in columns if c not in LABEL_COLUMNS}


def out_of_memory_message(settings: TrainParams, machine: MachineSettings, device: str) -> str:
    """What to change when training runs out of accelerator memory."""
    mini = machine.train_mini_batch_size
    if LOSSES[settings.loss].cached:
        first = (f"Lower the machine setting train_mini_batch_size (now {mini}; try {max(1, mini // 2)}): "
                 f"{settings.loss} keeps the batch of {settings.batch_size} at the memory of one mini-batch")
    else:
        first = ("Use train.loss: CachedMultipleNegativesRankingLoss (or CachedGISTEmbedLoss) with a smaller machine "
                 f"setting train_mini_batch_size (e.g. {max(1, min(32, settings.batch_size // 4))}): it keeps all "
                 f"{settings.batch_size} in-batch negatives at the memory of one mini-batch")
    return (f"out of memory on {device} (train.batch_size {settings.batch_size}, train.max_seq_length "
            f"{settings.max_seq_length}). {first}; or lower train.batch_size and raise train.gradient_accumulation_steps "
            "(same pairs per step, but MultipleNegativesRankingLoss then sees fewer in-batch negatives); the machine "
            "setting gradient_checkpointing: true and a lower train.max_seq_length also cut memory (and a lower machine "
            "setting encode_batch_size, when it ran out during the dev evaluation). Machine settings go in machine.yaml "
            "or EMBEDFT_<KEY> variables")


def training_arguments(
    settings: TrainParams, base: BaseParams, machine: MachineSettings, output_dir: Path, device: str, training: TrainingSet,
    evaluate: bool, world_size: int = 1,
) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments: every value comes from params, the machine settings or what the run has.

    Args:
        settings: the `train` params.
        base: seed and prompts.
        machine: gradient checkpointing.
        output_dir: where checkpoints go.
        device: the torch device this process trains on.
        training: the datasets (their columns decide the prompts).
        evaluate: whether there is a dev evaluator (evaluation, best checkpoint, early stopping).
        world_size: training processes (batches are drawn in runs of this many, see AlignedProportionalBatchSampler).
    """
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
        **checkpointing_flag(machine.gradient_checkpointing),
        seed=base.seed,
        data_seed=base.seed,
        # In-batch negatives must not repeat a text of the batch (it would be a false negative); losses without
        # them get plain seeded random batches. Groups of different negative counts are sampled in proportion
        # to their sizes, so every example is used once per epoch.
        batch_sampler=LOSSES[settings.loss].batch_sampler,
        multi_dataset_batch_sampler=functools.partial(AlignedProportionalBatchSampler, world_size=world_size),
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
        # train.report_to's trackers; dvclive's callback is made by tracker_callbacks, with its own folder
        report_to=[name for name in settings.report_to if name != "dvclive"] or "none",
        use_cpu=device == "cpu",
        dataloader_drop_last=single and training.examples > settings.batch_size,
        **choose_precision(settings.precision, device),
    )


def check_trackers(settings: TrainParams) -> None:
    """Fail early, naming `train.report_to`, on a tracker transformers does not know or whose package is missing.

    Raises:
        PipelineError: an unknown name, or a tracker that is not installed.
    """
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    trackers = [name for name in settings.report_to if name != "none"]
    unknown = [name for name in trackers if name not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise PipelineError(f"params.yaml: train.report_to: unknown tracker {', '.join(map(repr, unknown))}; transformers "
                            f"knows none, {', '.join(sorted(INTEGRATION_TO_CALLBACK))}")
    missing = [name for name in trackers if name not in get_available_reporting_integrations()]
    if missing:
        raise PipelineError(f"params.yaml: train.report_to names {', '.join(missing)}, whose package is not installed "
                            f"(pip install {' '.join(missing)})")


def tracker_callbacks(settings: TrainParams, checkpoints: Path) -> list:
    """The callback of `train.report_to: [dvclive]`, in the main process only.

    transformers' own dvclive callback would make ``dvclive.Live()`` with its defaults: a ``dvclive/`` folder in
    the project and the tracker's metrics and plots added to ``dvc.yaml``, beside the template's own curves. This
    one logs to a folder beside the checkpoints (removed after training) and leaves ``dvc.yaml`` alone; inside
    ``dvc exp run`` with DVC Studio set up (``DVC_STUDIO_TOKEN``), dvclive sends the live metrics to Studio.
    """
    if "dvclive" not in settings.report_to:
        return []
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    return [DVCLiveCallback(live=Live(dir=str(checkpoints / TRACKER_FOLDER), dvcyaml=None, save_dvc_exp=False))]


TRACKER_FOLDER = "dvclive_tracker"
"""Inside the checkpoints folder: what `report_to: [dvclive]` writes (the template's curves are in ``dvclive/``)."""


def checkpointing_flag(enabled: bool) -> dict[str, bool]:
    """The trainer's activation (gradient) checkpointing switch, under its name in the installed transformers
    (``activation_checkpointing`` since 5.x; ``gradient_checkpointing`` before, now a deprecated alias)."""
    names = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}
