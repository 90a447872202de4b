"""Where each stage reads and writes; ``dvc.yaml`` declares the same paths as deps and outs."""

import argparse
from dataclasses import dataclass
from pathlib import Path

from stages.params import DataParams

CORPUS_FILE = Path("data/corpus/corpus.jsonl")
SPLIT_DIR = Path("data/split")
PAIRS_DIR = Path("data/pairs")
NEGATIVES_DIR = Path("data/negatives")
BASE_EMBEDDINGS_DIR = Path("data/embeddings/base")
FINETUNED_EMBEDDINGS_DIR = Path("data/embeddings/finetuned")
FINETUNED_MODEL_DIR = Path("models/finetuned")
CHECKPOINTS_DIR = Path(".checkpoints/train")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")
TRAIN_PLOTS_DIR = PLOTS_DIR / "train"
SPLIT_NAMES = ("train", "dev", "test")


def source_corpus_path(data: DataParams) -> Path:
    """The user's corpus file in the configured dataset; only `ingest` reads it, the others read CORPUS_FILE."""
    return Path(data.dir) / data.corpus


@dataclass(frozen=True)
class RoundPaths:
    """Where one round of mining, training and evaluation reads and writes.

    Round 1 is the default pipeline (the paths above). Round N > 1 mines with round N-1's fine-tuned model
    (whose corpus embeddings that round's `evaluate` stored) and writes everything under its own names, so
    the rounds never overwrite each other and each is a separate DVC output.
    """

    number: int
    miner_model: Path | None
    """The model that mines this round's negatives; None means the base model (``base.model``)."""
    miner_embeddings: Path
    """Corpus embeddings of the mining model."""
    negatives: Path
    model: Path
    model_embeddings: Path
    metrics: Path
    """Folder of this round's mine.json, train.json, evaluate.json."""
    plots: Path
    checkpoints: Path


def round_paths(number: int = 1) -> RoundPaths:
    """The paths of mining/training round ``number`` (1 = the default pipeline)."""
    if number < 1:
        raise ValueError(f"round must be 1 or more, got {number}")
    if number == 1:
        return RoundPaths(1, None, BASE_EMBEDDINGS_DIR, NEGATIVES_DIR, FINETUNED_MODEL_DIR, FINETUNED_EMBEDDINGS_DIR,
                          METRICS_DIR, PLOTS_DIR, CHECKPOINTS_DIR)
    previous = round_paths(number - 1)
    name = f"round{number}"
    return RoundPaths(number, previous.model, previous.model_embeddings, Path("data") / name / "negatives",
                      Path("models") / name, Path("data/embeddings") / name, METRICS_DIR / name, PLOTS_DIR / name,
                      CHECKPOINTS_DIR.with_name(f"train_{name}"))


def parse_round(argv: list[str] | None = None) -> RoundPaths:
    """Read ``--round N`` (default 1) from the command line of a stage that runs once per round."""
    parser = argparse.ArgumentParser(description="Run this stage for one mining/training round.")
    parser.add_argument("--round", type=int, default=1, help="1 = the default pipeline; 2 = mine with round 1's model")
    number = parser.parse_args(argv).round
    if number < 1:
        parser.error(f"--round must be 1 or more, got {number}")
    return round_paths(number)
