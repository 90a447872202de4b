"""Where each stage reads and writes: every path and file name that passes between stages, defined once.

``dvc.yaml`` declares the same paths as deps and outs; a test checks that the two agree.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path("data/corpus")
CORPUS_FILE = CORPUS_DIR / "corpus.jsonl"
"""The canonical corpus `ingest` writes; every later stage reads this one, never the user's file."""
SPLIT_DIR = Path("data/split")
SPLIT_NAMES = ("train", "dev", "test")
PAIRS_DIR = Path("data/pairs")
PAIRS_FILE = "pairs.jsonl"
"""Inside PAIRS_DIR: the training pairs of `synthesize`."""
NEGATIVES_DIR = Path("data/negatives")
NEGATIVES_FILE = "negatives.jsonl"
"""Inside a round's negatives folder: (anchor, positive, source, negative_1..k) rows."""
SCORED_FILE = "scored.jsonl"
"""Inside a round's negatives folder: the same rows with teacher scores (for CoSENT, MarginMSE and DistillKLDiv)."""
BASE_EMBEDDINGS_DIR = Path("data/embeddings/base")
FINETUNED_EMBEDDINGS_DIR = Path("data/embeddings/finetuned")
FINETUNED_MODEL_DIR = Path("models/finetuned")
CHECKPOINTS_DIR = Path(".checkpoints/train")
EMBEDDING_SHARDS_DIR = Path(".checkpoints/embeddings")
"""Shards of unfinished corpus encodes, one folder per (model files, prompt, window, corpus, batching, backend),
outside DVC's outputs so a killed `embed_corpus` or `embed_finetuned` resumes at the first missing shard."""
METRICS_DIR = Path("metrics")
"""DVC metrics: the few numbers a reviewer compares in `dvc metrics diff` (the same inputs give the same bytes)."""
REPORTS_DIR = Path("reports")
"""Everything else a stage counts (per source, per filter, per width, the audit), git-tracked but not DVC metrics."""
LOGS_DIR = Path("logs")
"""Measurements of a run (seconds, throughput, memory, cache hits): git-ignored and no DVC output, because they
differ between identical runs."""
PLOTS_DIR = Path("plots")
REVIEWS_DIR = Path("reviews")
SYNTHESIZE_REVIEW = REVIEWS_DIR / "synthesize.md"
"""A sample of kept and dropped pairs for people to read; git-tracked, so it shows in pull requests."""
INGEST_REPORT = REPORTS_DIR / "ingest.json"
EMBED_REPORT = REPORTS_DIR / "embed.json"
SYNTHESIZE_REPORT = REPORTS_DIR / "synthesize.json"
SYNTHESIZE_LOG = LOGS_DIR / "synthesize.json"
TRUNCATE_METRICS = METRICS_DIR / "truncate.json"
TRUNCATE_REPORT = REPORTS_DIR / "truncate.json"
NDCG_BY_DIM_PLOT = PLOTS_DIR / "ndcg_by_dim.csv"
MODEL_CARD = REPORTS_DIR / "model_card.md"
"""The fine-tuned model's card as it is published: its saved card with the test metrics, the verdict and the
Matryoshka table (stage `model_card`); git-tracked, so a pull request shows the card a merge would publish."""


def export_dir(export_format: str) -> Path:
    """Where an exported copy of the fine-tuned model goes: ``models/finetuned-<format>``."""
    return FINETUNED_MODEL_DIR.with_name(f"{FINETUNED_MODEL_DIR.name}-{export_format}")


def export_metrics(export_format: str) -> Path:
    return METRICS_DIR / f"export_{export_format}.json"


@dataclass(frozen=True)
class RoundPaths:
    """Where one round of mining, training and evaluation reads and writes.

    Round 1 is the default pipeline (the paths above). Round N > 1 mines with round N-1's fine-tuned model
    (whose corpus embeddings that round's `embed_finetuned` stored) and writes everything under its own names,
    so the rounds never overwrite each other and each is a separate DVC output.
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
    """Folder of this round's metrics: mine.json, train.json, evaluate.json."""
    reports: Path
    """Folder of this round's full reports (the same names) and the per-query table."""
    logs: Path
    """Folder of this round's run measurements."""
    plots: Path
    reviews: Path
    checkpoints: Path

    @property
    def name(self) -> str:
        """'' for round 1, 'round<N>' for later rounds (the folder names they write under)."""
        return "" if self.number == 1 else f"round{self.number}"

    @property
    def hybrid_choice(self) -> Path:
        """The weighted hybrid's settings chosen on dev (weight, normalisation, depth), next to the model:
        ``models/hybrid.json`` for round 1, ``models/hybrid_roundN.json`` for round N, with the dev score of every
        weight tried. A search service reads it (docs/evaluation.md)."""
        return self.model.with_name("hybrid.json" if self.number == 1 else f"hybrid_{self.name}.json")

    @property
    def mine_metrics(self) -> Path:
        return self.metrics / "mine.json"

    @property
    def mine_report(self) -> Path:
        return self.reports / "mine.json"

    @property
    def mine_review(self) -> Path:
        return self.reviews / "mine_negatives.md"

    @property
    def train_metrics(self) -> Path:
        return self.metrics / "train.json"

    @property
    def train_report(self) -> Path:
        return self.reports / "train.json"

    @property
    def train_log(self) -> Path:
        """Seconds, pairs per second, peak memory, device and processes of the last training run."""
        return self.logs / "train.json"

    @property
    def train_plots(self) -> Path:
        """The training curves: loss.tsv and learning_rate.tsv (dvclive's format) and dev.tsv (the dev metrics, one column each)."""
        return self.plots / "train"

    @property
    def evaluate_metrics(self) -> Path:
        return self.metrics / "evaluate.json"

    @property
    def evaluate_report(self) -> Path:
        return self.reports / "evaluate.json"

    @property
    def per_query_table(self) -> Path:
        return self.reports / "evaluate_per_query.csv"

    @property
    def recall_plot(self) -> Path:
        return self.plots / "recall_at_k.csv"


def round_paths(number: int = 1) -> RoundPaths:
    """The paths of mining/training round ``number`` (1 = the default pipeline)."""
    if number < 1:
        raise ValueError(f"round must be 1 or more, got {number}")
    if number == 1:
        return RoundPaths(1, None, BASE_EMBEDDINGS_DIR, NEGATIVES_DIR, FINETUNED_MODEL_DIR, FINETUNED_EMBEDDINGS_DIR,
                          METRICS_DIR, REPORTS_DIR, LOGS_DIR, PLOTS_DIR, REVIEWS_DIR, CHECKPOINTS_DIR)
    previous = round_paths(number - 1)
    name = f"round{number}"
    return RoundPaths(number, previous.model, previous.model_embeddings, Path("data") / name / "negatives",
                      Path("models") / name, Path("data/embeddings") / name, METRICS_DIR / name, REPORTS_DIR / name,
                      LOGS_DIR / name, PLOTS_DIR / name, REVIEWS_DIR / name, CHECKPOINTS_DIR.with_name(f"train_{name}"))


def parse_round(argv: list[str] | None = None) -> RoundPaths:
    """Read ``--round N`` (default 1) from the command line of a stage that runs once per round."""
    parser = argparse.ArgumentParser(description="Run this stage for one mining/training round.")
    parser.add_argument("--round", type=int, default=1, help="1 = the default pipeline; 2 = mine with round 1's model")
    number = parser.parse_args(argv).round
    if number < 1:
        parser.error(f"--round must be 1 or more, got {number}")
    return round_paths(number)
