"""Stage `train`: fine-tune the base model with MultipleNegativesRankingLoss inside MatryoshkaLoss.

Reads the (anchor, positive, negative_1..n) rows from `mine_negatives`; in-batch negatives come for free
and the NO_DUPLICATES sampler keeps a text from appearing twice in a batch (which would make it a false
negative). The model is saved atomically to ``models/finetuned`` with its prompts and model card, and the
training curves (loss and learning rate per logged step, in dvclive's format) to ``plots/train/``.
"""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import torch
from datasets import Dataset
from dvclive.plots import Metric
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer import losses
from transformers import TrainerCallback

from stages.atomic import atomic_path, write_json_atomic
from stages.data_io import read_records
from stages.errors import PipelineError, run_stage
from stages.models import load_model, pick_device
from stages.params import BaseParams, TrainParams, load_params
from stages.paths import CHECKPOINTS_DIR, FINETUNED_MODEL_DIR, METRICS_DIR, NEGATIVES_DIR, TRAIN_PLOTS_DIR

CURVES = ("loss", "learning_rate")


def training_columns(rows: list[dict]) -> dict[str, list[str]]:
    """Columns in the order the loss expects: anchor, positive, negative_1..n (the count shared by all rows)."""
    if not rows:
        raise PipelineError(f"{NEGATIVES_DIR / 'negatives.jsonl'}: no training rows")
    negatives = sorted((k for k in rows[0] if k.startswith("negative_")), key=lambda k: int(k.split("_")[1]))
    columns = ["anchor", "positive", *negatives]
    for number, row in enumerate(rows, start=1):
        if sorted(k for k in row if k in columns or k.startswith("negative_")) != sorted(columns):
            raise PipelineError(f"{NEGATIVES_DIR / 'negatives.jsonl'}:{number}: expected columns {columns}, got {sorted(row)}")
    return {column: [row[column] for row in rows] for column in columns}


def choose_precision(setting: str, device: str) -> dict[str, bool]:
    """Trainer flags for mixed precision: bf16 where the GPU supports it, else fp16 on GPU, fp32 on CPU."""
    if setting == "fp32" or not device.startswith("cuda"):
        if setting in ("fp16", "bf16") and not device.startswith("cuda"):
            print(f"train: precision '{setting}' needs a CUDA GPU; using fp32 on {device}")
        return {"bf16": False, "fp16": False}
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return {"bf16": True, "fp16": False}
    return {"bf16": False, "fp16": True}


def build_loss(model: SentenceTransformer, settings: TrainParams) -> torch.nn.Module:
    """MNRL, wrapped in MatryoshkaLoss over the dims the model can produce (if any are configured)."""
    loss = losses.MultipleNegativesRankingLoss(model)
    full = model.get_embedding_dimension()
    dims = sorted({d for d in settings.matryoshka_dims if d <= full}, reverse=True)
    if settings.matryoshka_dims and not dims:
        raise PipelineError(f"params.yaml: train.matryoshka_dims {settings.matryoshka_dims} are all above the model's dimension {full}")
    return losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims) if dims else loss


def prompts_for(columns: list[str], base: BaseParams) -> dict[str, str] | None:
    """Per-column prompts: the query prompt for anchors, the document prompt for everything else."""
    if not (base.query_prompt or base.document_prompt):
        return None
    return {c: (base.query_prompt if c == "anchor" else base.document_prompt) for c in columns}


class TrainingCurves(TrainerCallback):
    """Records the training loss and learning rate at every trainer log (step 1, then every ``logging_steps``).

    Each curve is written by dvclive's metric history writer (``dvclive.plots.Metric``, what ``Live.log_metric``
    uses) to ``<scratch>/metrics/<name>.tsv``, columns ``step`` and ``<name>``; :meth:`publish` then puts the
    curves into the stage's output folder atomically. ``dvclive.Live`` itself is not used: it ties itself to
    the DVC repository (experiments, ``dvc.yaml``, Studio), none of which a pipeline stage wants, and in a Git
    repository without commits it fails (dvclive 3.49: ``SCMError: Empty git repo``).
    """

    def __init__(self, scratch: Path):
        self.scratch = Path(scratch)
        self.curves: dict[str, Metric] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.curves = {name: Metric(name, str(self.scratch)) for name in CURVES}

    def on_log(self, args, state, control, logs=None, **kwargs):
        for name, curve in self.curves.items():
            if logs and name in logs:  # the end-of-training summary log has train_loss etc. instead: skipped
                curve.step = state.global_step
                curve.dump(float(logs[name]))

    def publish(self, destination: Path) -> list[Path]:
        """Replace ``destination`` atomically with a folder holding ``<curve>.tsv`` for each curve."""
        sources = [self.scratch / Metric.subfolder / f"{name}.tsv" for name in CURVES]
        missing = [str(path) for path in sources if not path.is_file()]
        if missing:
            raise PipelineError(f"train: no training curve was logged to {', '.join(missing)}")
        with atomic_path(destination, is_dir=True) as out:
            for source in sources:
                shutil.copyfile(source, out / source.name)
        return [Path(destination) / source.name for source in sources]


def fine_tune(
    rows: list[dict], base: BaseParams, settings: TrainParams, curves: TrainingCurves | None = None
) -> tuple[SentenceTransformer, dict]:
    """Train a copy of the base model on ``rows``; return it with a report (steps, pairs, speed, loss).

    With ``curves``, the loss and learning rate of each logged step are recorded (see :class:`TrainingCurves`).
    """
    device = pick_device(base.device)
    model = load_model(base.model, device, settings.max_seq_length)
    columns = training_columns(rows)
    dataset = Dataset.from_dict(columns)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(CHECKPOINTS_DIR),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_ratio,  # transformers 5 reads a float below 1 as a ratio
        weight_decay=settings.weight_decay,
        seed=base.seed,
        data_seed=base.seed,
        batch_sampler="no_duplicates",
        prompts=prompts_for(list(columns), base),
        save_strategy="no",
        logging_steps=settings.logging_steps,
        logging_first_step=True,  # every curve starts at step 1, however short the run
        report_to="none",  # no automatic integrations; the curves come only from TrainingCurves
        use_cpu=device == "cpu",
        dataloader_drop_last=len(dataset) > settings.batch_size,
        **choose_precision(settings.precision, device),
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=build_loss(model, settings),
                                         callbacks=[curves] if curves is not None else None)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    if base.query_prompt or base.document_prompt:
        model.prompts = {"query": base.query_prompt, "document": base.document_prompt}
    pairs_seen = result.global_step * settings.batch_size
    report = {
        "train_rows": len(dataset),
        "steps": result.global_step,
        "pairs_seen": pairs_seen,
        "train_loss": round(float(result.training_loss), 6),
        "train_seconds": round(seconds, 1),
        "pairs_per_second": round(pairs_seen / seconds, 2) if seconds else 0.0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": device,
    }
    return model, report


def main() -> None:
    params = load_params()
    rows = read_records(NEGATIVES_DIR / "negatives.jsonl")
    curves = TrainingCurves(CHECKPOINTS_DIR / "dvclive")
    model, report = fine_tune(rows, params.base, params.train, curves)
    with atomic_path(FINETUNED_MODEL_DIR, is_dir=True) as out:
        model.save(str(out), safe_serialization=True)
    curves.publish(TRAIN_PLOTS_DIR)
    shutil.rmtree(CHECKPOINTS_DIR, ignore_errors=True)
    write_json_atomic(METRICS_DIR / "train.json", report)
    print(f"train: {report}")


if __name__ == "__main__":
    run_stage(main)
