"""Where each stage reads and writes; ``dvc.yaml`` declares the same paths as deps and outs."""

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
