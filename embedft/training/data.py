"""Training examples for the chosen loss, from the mined rows or the scored rows of `mine_negatives`.

Two input files, both in the round's negatives folder:

- ``negatives.jsonl``: ``{anchor, positive, source, negative_1 .. negative_k}``, where k varies from row to row
  (0 when the miner found no negative for the pair).
- ``scored.jsonl`` (written when the miner scores its candidates): ``{anchor, positive, source, negatives: [..],
  positive_score, negative_scores: [..], score_source}``.

What each loss trains on:

=====================================  ===========================================================================
MultipleNegativesRankingLoss, Cached*  (anchor, positive, negative_1..k): every mined negative, plus in-batch ones
GISTEmbedLoss, CachedGISTEmbedLoss     (anchor, positive, negative): one row per mined negative (the loss takes at
                                       most one), or (anchor, positive) when a pair has none
TripletLoss                            (anchor, positive, negative): one row per mined negative; pairs without a
                                       negative are skipped
CoSENTLoss                             (anchor, text, score): the positive and every scored negative, each with
                                       its teacher score; the loss learns to order pairs by score
MarginMSELoss                          (anchor, positive, negative_1..k, label): label_i = positive_score -
                                       negative_score_i; pairs without a scored negative are skipped
=====================================  ===========================================================================

Rows with different numbers of negatives cannot share a batch, so tuples are grouped by their negative count
into one dataset per count, which :class:`AlignedProportionalBatchSampler` samples in proportion to their
sizes. A group too small to fill one batch joins the next smaller group, its extra negatives dropped.
"""

from __future__ import annotations

import importlib.util
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict
from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler
from torch.utils.data import BatchSampler, ConcatDataset

from stages.data_io import read_jsonl
from stages.errors import DataFileError, PipelineError
from stages.params import TrainParams

NEGATIVES_FILE = "negatives.jsonl"
SCORED_FILE = "scored.jsonl"


@dataclass(frozen=True)
class LossInputs:
    """What a loss needs from the data.

    Attributes:
        in_batch_negatives: the other rows of a batch serve as negatives, so no text may repeat in a batch
            (the NO_DUPLICATES sampler); losses without in-batch negatives get plain random batches.
        scored: trains on teacher scores (``scored.jsonl``) rather than on the mined rows.
        one_negative: takes at most one negative per example, so a row with k negatives becomes k examples.
        needs_negatives: a pair without any negative cannot be used.
    """

    in_batch_negatives: bool
    scored: bool = False
    one_negative: bool = False
    needs_negatives: bool = False


LOSS_INPUTS: dict[str, LossInputs] = {
    "MultipleNegativesRankingLoss": LossInputs(in_batch_negatives=True),
    "CachedMultipleNegativesRankingLoss": LossInputs(in_batch_negatives=True),
    "GISTEmbedLoss": LossInputs(in_batch_negatives=True, one_negative=True),
    "CachedGISTEmbedLoss": LossInputs(in_batch_negatives=True, one_negative=True),
    "TripletLoss": LossInputs(in_batch_negatives=False, one_negative=True, needs_negatives=True),
    "CoSENTLoss": LossInputs(in_batch_negatives=False, scored=True),
    "MarginMSELoss": LossInputs(in_batch_negatives=False, scored=True, needs_negatives=True),
}


@dataclass(frozen=True)
class Example:
    """One training example before it becomes a dataset row.

    Attributes:
        anchor: the query-side text.
        positive: the relevant document.
        negatives: hard negatives, hardest first as mined.
        margins: MarginMSELoss only: teacher score of the positive minus that of each negative.
    """

    anchor: str
    positive: str
    negatives: tuple[str, ...] = ()
    margins: tuple[float, ...] | None = None

    def truncated(self, count: int) -> "Example":
        """The same example keeping only its first ``count`` negatives (and their margins)."""
        margins = None if self.margins is None else self.margins[:count]
        return Example(self.anchor, self.positive, self.negatives[:count], margins)


@dataclass
class TrainingSet:
    """The datasets handed to the trainer, and what went into them (for metrics and the model card).

    Attributes:
        datasets: name -> dataset; one per negative count (``negatives_<k>``), or a single ``pairs`` dataset.
        source_file: the file the examples came from.
        pairs_by_source: input rows used, counted by their ``source`` (labelled, title, section, ...).
        examples: rows over all datasets (one epoch's worth of training examples).
        skipped_rows: input rows the loss cannot use (e.g. no negative, for TripletLoss).
        score_source: where the teacher scores came from (cross_encoder, dense, bm25), for scored losses.
    """

    datasets: dict[str, Dataset]
    source_file: Path
    pairs_by_source: dict[str, int]
    examples: int
    skipped_rows: int = 0
    score_source: str | None = None
    negatives_per_example: dict[str, int] = field(default_factory=dict)

    def trainer_dataset(self) -> DatasetDict:
        """The groups as a DatasetDict, so that :class:`AlignedProportionalBatchSampler` orders the batches
        (even for a single group: it also keeps the processes of a DDP run in step)."""
        return DatasetDict(self.datasets)

    @property
    def pairs(self) -> int:
        """Input rows used for training."""
        return sum(self.pairs_by_source.values())


def negative_columns(row: dict, path: Path, line: int) -> list[str]:
    """The row's ``negative_<i>`` keys in order, checked to run 1..k without gaps and to hold non-empty text."""
    numbers = []
    for key in row:
        if key.startswith("negative_"):
            suffix = key[len("negative_"):]
            if not suffix.isdigit() or int(suffix) < 1:
                raise DataFileError(path, f"unexpected field '{key}' (negatives are negative_1, negative_2, ...)", line)
            numbers.append(int(suffix))
    numbers.sort()
    if numbers != list(range(1, len(numbers) + 1)):
        raise DataFileError(path, f"negatives must be numbered negative_1..negative_{len(numbers)} without gaps, got {numbers}", line)
    columns = [f"negative_{n}" for n in numbers]
    for column in columns:
        if not isinstance(row[column], str) or not row[column].strip():
            raise DataFileError(path, f"field '{column}' must be a non-empty string", line)
    return columns


def read_mined_rows(path: Path) -> list[tuple[dict, tuple[str, ...]]]:
    """Read ``negatives.jsonl``: (row, its negatives in order) per line; an empty file is an error naming it."""
    rows = []
    for line, row in read_jsonl(path, required=("anchor", "positive"), optional=("source",)):
        rows.append((row, tuple(row[c] for c in negative_columns(row, path, line))))
    return rows


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_scored_rows(path: Path) -> list[dict]:
    """Read ``scored.jsonl``, checking that every negative has a finite score; errors name the file and line."""
    rows = []
    for line, row in read_jsonl(path, required=("anchor", "positive"), optional=("source", "score_source")):
        negatives, scores = row.get("negatives"), row.get("negative_scores")
        if not isinstance(negatives, list) or not all(isinstance(t, str) and t.strip() for t in negatives):
            raise DataFileError(path, "field 'negatives' must be a list of non-empty strings", line)
        if not isinstance(scores, list) or not all(_finite_number(s) for s in scores):
            raise DataFileError(path, "field 'negative_scores' must be a list of finite numbers", line)
        if len(scores) != len(negatives):
            raise DataFileError(path, f"{len(negatives)} negatives but {len(scores)} negative_scores", line)
        if not _finite_number(row.get("positive_score")):
            raise DataFileError(path, "field 'positive_score' must be a finite number", line)
        rows.append(row)
    return rows


def has_rows(path: Path) -> bool:
    """True when ``path`` exists and holds at least one non-blank line."""
    try:
        with open(path, "rb") as handle:
            return any(line.strip() for line in handle)
    except (FileNotFoundError, IsADirectoryError):
        return False


def check_settings(settings: TrainParams, negatives_dir: Path) -> None:
    """Reject loss settings the data cannot serve, before any model is loaded; errors name the params keys.

    Args:
        settings: the `train` params.
        negatives_dir: the round's folder holding negatives.jsonl and, when scored, scored.jsonl.
    """
    needs = LOSS_INPUTS[settings.loss]
    if needs.scored and not has_rows(negatives_dir / SCORED_FILE):
        raise PipelineError(
            f"params.yaml: train.loss is {settings.loss}, which trains on teacher scores, but "
            f"{negatives_dir / SCORED_FILE} is missing or empty (mine_negatives writes it only when it mines negatives); set "
            "mine_negatives.num_negatives to 1 or more (and mine_negatives.cross_encoder for cross-encoder teacher "
            "scores rather than the dense model's), or choose a train.loss that needs "
            "no scores (MultipleNegativesRankingLoss, CachedMultipleNegativesRankingLoss, GISTEmbedLoss, TripletLoss)"
        )
    if settings.lora.enabled and importlib.util.find_spec("peft") is None:
        raise PipelineError("params.yaml: train.lora.enabled needs the peft package: pip install peft "
                            "(or the project's `lora` extra)")
    if settings.early_stopping_patience and not settings.keep_best:
        raise PipelineError(
            "params.yaml: train.early_stopping_patience needs train.keep_best: true (stopping early keeps the best "
            "checkpoint); set train.early_stopping_patience: 0 to train to the end without keeping the best"
        )


def score_warning(training: "TrainingSet") -> str | None:
    """A warning when teacher scores come from BM25, whose scale differs from query to query."""
    if training.score_source and "bm25" in training.score_source:
        return ("train: warning: the teacher scores in {} come from BM25, whose scale varies from query to query and "
                "is far from the student's cosine; CoSENTLoss and MarginMSELoss learn best from cross-encoder or dense "
                "scores".format(training.source_file))
    return None


def mined_examples(rows: Iterable[tuple[dict, tuple[str, ...]]], needs: LossInputs) -> tuple[list[Example], Counter, int]:
    """Examples from mined rows for the contrastive and triplet losses: (examples, rows used by source, rows skipped)."""
    examples, used, skipped = [], Counter(), 0
    for row, negatives in rows:
        if needs.needs_negatives and not negatives:
            skipped += 1
            continue
        used[row.get("source") or "unknown"] += 1
        if needs.one_negative and negatives:
            examples += [Example(row["anchor"], row["positive"], (negative,)) for negative in negatives]
        else:
            examples.append(Example(row["anchor"], row["positive"], negatives))
    return examples, used, skipped


def margin_examples(rows: Iterable[dict]) -> tuple[list[Example], Counter, int]:
    """MarginMSELoss examples: each scored negative with the teacher's margin positive_score - negative_score."""
    examples, used, skipped = [], Counter(), 0
    for row in rows:
        if not row["negatives"]:
            skipped += 1
            continue
        used[row.get("source") or "unknown"] += 1
        margins = tuple(float(row["positive_score"]) - float(score) for score in row["negative_scores"])
        examples.append(Example(row["anchor"], row["positive"], tuple(row["negatives"]), margins))
    return examples, used, skipped


def cosent_dataset(rows: list[dict]) -> tuple[Dataset, Counter]:
    """CoSENTLoss pairs: (anchor, positive, positive_score) and (anchor, negative_i, negative_score_i) per row."""
    columns: dict[str, list] = {"anchor": [], "text": [], "score": []}
    used: Counter = Counter()
    for row in rows:
        used[row.get("source") or "unknown"] += 1
        for text, score in [(row["positive"], row["positive_score"]), *zip(row["negatives"], row["negative_scores"])]:
            columns["anchor"].append(row["anchor"])
            columns["text"].append(text)
            columns["score"].append(float(score))
    return Dataset.from_dict(columns), used


def group_by_negative_count(examples: list[Example], min_group_size: int) -> dict[int, list[Example]]:
    """Examples keyed by their number of negatives; a group smaller than ``min_group_size`` joins the next
    smaller group (its extra negatives dropped), so no group is too small to fill a batch while a smaller
    group exists. Order within a group follows the input, so the result is deterministic."""
    groups: dict[int, list[Example]] = {}
    for example in examples:
        groups.setdefault(len(example.negatives), []).append(example)
    counts = sorted(groups, reverse=True)
    for position, count in enumerate(counts[:-1]):
        if len(groups[count]) < min_group_size:
            smaller = counts[position + 1]
            groups[smaller] = [e.truncated(smaller) for e in groups.pop(count)] + groups[smaller]
    return dict(sorted(groups.items()))


def tuples_dataset(examples: list[Example]) -> Dataset:
    """Columns anchor, positive, negative_1..k (and ``label`` with the margins, when the examples carry them)."""
    count = len(examples[0].negatives)
    columns: dict[str, list] = {"anchor": [e.anchor for e in examples], "positive": [e.positive for e in examples]}
    for i in range(count):
        columns[f"negative_{i + 1}"] = [e.negatives[i] for e in examples]
    if examples[0].margins is not None:
        columns["label"] = [list(e.margins) for e in examples]
    return Dataset.from_dict(columns)


def build_training_set(settings: TrainParams, negatives_dir: Path, min_group_size: int) -> TrainingSet:
    """Read the round's mined or scored rows and shape them for ``settings.loss``.

    Args:
        settings: the `train` params (the loss decides the input file and the shape).
        negatives_dir: folder holding negatives.jsonl / scored.jsonl.
        min_group_size: smallest group of equal negative count kept on its own (the per-device batch size).

    Raises:
        PipelineError: naming the source file when no usable example is left.
    """
    needs = LOSS_INPUTS[settings.loss]
    score_source = None
    if needs.scored:
        source_file = negatives_dir / SCORED_FILE
        rows = read_scored_rows(source_file)
        sources = sorted({row.get("score_source") or "unknown" for row in rows})
        score_source = "+".join(sources)
        if settings.loss == "CoSENTLoss":
            dataset, used = cosent_dataset(rows)
            return TrainingSet({"pairs": dataset}, source_file, dict(sorted(used.items())), len(dataset),
                               score_source=score_source)
        examples, used, skipped = margin_examples(rows)
    else:
        source_file = negatives_dir / NEGATIVES_FILE
        examples, used, skipped = mined_examples(read_mined_rows(source_file), needs)
    if not examples:
        hint = (f": all {skipped} rows lack a negative, which params.yaml: train.loss {settings.loss} needs; set "
                "mine_negatives.num_negatives to 1 or more, or choose MultipleNegativesRankingLoss") if skipped else ""
        raise PipelineError(f"{source_file}: no training example{hint}")
    groups = group_by_negative_count(examples, min_group_size)
    datasets = {f"negatives_{count}": tuples_dataset(group) for count, group in groups.items()}
    return TrainingSet(datasets, source_file, dict(sorted(used.items())), len(examples), skipped, score_source,
                       {str(count): len(group) for count, group in groups.items()})


class AlignedProportionalBatchSampler(MultiDatasetDefaultBatchSampler):
    """Batches from each group in proportion to the group's size, drawn in runs of ``world_size`` from one group.

    The trainer hands consecutive batches to the processes of a DDP run in turn, so with runs of ``world_size``
    every process trains on the same group at every step: in-batch negatives gathered across processes need
    batches of the same shape, and a process with an extra batch would wait forever for the others. Batches
    that do not fill a last run are dropped. With one process this is sentence-transformers' PROPORTIONAL
    sampler: every batch of every group once per epoch, in a seeded random order.

    Args:
        dataset: the groups concatenated (built by the trainer).
        batch_samplers: one batch sampler per group (NO_DUPLICATES or random, per the loss).
        generator: the trainer's generator, reseeded with ``seed + epoch`` at each epoch.
        seed: `base.seed`.
        world_size: training processes.
    """

    def __init__(self, dataset: ConcatDataset, batch_samplers: list[BatchSampler], generator: torch.Generator | None = None,
                 seed: int = 0, world_size: int = 1) -> None:
        super().__init__(dataset, batch_samplers, generator, seed)
        self.world_size = world_size

    def __iter__(self):
        if self.generator is not None and self.seed is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        offsets = [0]
        for group in self.dataset.datasets[:-1]:
            offsets.append(offsets[-1] + len(group))
        batches = [list(sampler) for sampler in self.batch_samplers]
        runs = [(group, start) for group, listed in enumerate(batches)
                for start in range(0, len(listed) - self.world_size + 1, self.world_size)]
        for position in torch.randperm(len(runs), generator=self.generator).tolist():
            group, start = runs[position]
            for batch in batches[group][start:start + self.world_size]:
                yield [offsets[group] + index for index in batch]

    def __len__(self) -> int:
        return sum(len(sampler) // self.world_size for sampler in self.batch_samplers) * self.world_size
