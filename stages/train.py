"""Stage `train`: fine-tune the base model with MultipleNegativesRankingLoss inside MatryoshkaLoss.

Reads the (anchor, positive, negative_1..n) rows from `mine_negatives`; in-batch negatives come for free
and the NO_DUPLICATES sampler keeps a text from appearing twice in a batch (which would make it a false
negative). The model is saved atomically to ``models/finetuned`` with its prompts and model card.
"""

from __future__ import annotations

import resource
import shutil
import time

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer import losses

from stages.atomic import atomic_path, write_json_atomic
from stages.data_io import read_records
from stages.errors import PipelineError, run_stage
from stages.models import load_model, pick_device
from stages.params import BaseParams, TrainParams, load_params
from stages.paths import CHECKPOINTS_DIR, FINETUNED_MODEL_DIR, METRICS_DIR, NEGATIVES_DIR


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


def fine_tune(rows: list[dict], base: BaseParams, settings: TrainParams) -> tuple[SentenceTransformer, dict]:
    """Train a copy of the base model on ``rows``; return it with a report (steps, pairs, speed, loss)."""
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
        logging_steps=10,
        report_to="none",
        use_cpu=device == "cpu",
        dataloader_drop_last=len(dataset) > settings.batch_size,
        **choose_precision(settings.precision, device),
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=build_loss(model, settings))
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
    model, report = fine_tune(rows, params.base, params.train)
    with atomic_path(FINETUNED_MODEL_DIR, is_dir=True) as out:
        model.save(str(out), safe_serialization=True)
    shutil.rmtree(CHECKPOINTS_DIR, ignore_errors=True)
    write_json_atomic(METRICS_DIR / "train.json", report)
    print(f"train: {report}")


if __name__ == "__main__":
    run_stage(main)
