"""Training examples for the chosen loss, from the mined rows or the scored rows of `mine_negatives`.

Two input files, both in the round's negatives folder:

- ``negatives.jsonl``: ``{anchor, positive, source, negative_1 .. negative_k}``, where k varies from row to row
  (0 when the miner found no negative for the pair).
- ``scored.jsonl`` (written when the miner scores its candidates): ``{anchor, positive, source, negatives: [..],
  positive_score, negative_scores: [..], score_source}``.

What each loss trains on is in :mod:`embedft.config.losses`.

Rows with different numbers of negatives cannot share a batch, so tuples are grouped by their negative count
into one dataset per count, which :class:`AlignedProportionalBatchSampler` samples in proportion to their
sizes (:class:`embedft.training.sampler.AlignedProportionalBatchSampler`). A group too small to fill one batch
joins the next smaller group, its extra negatives dropped; a smallest group too small for the loss to learn
from is dropped, with a count (:func:`drop_groups_below`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict

import embedft.training.distributed as distributed
from embedft.config import LOSSES, Loss, TrainParams
from embedft.core import MinedRow, PipelineError, ScoredRow, read_negatives, read_scored
from embedft.core.artifacts import NEGATIVES_FILE, SCORED_FILE

logger = logging.getLogger(__name__)

MIN_IN_BATCH_ROWS = 2
"""The fewest rows a batch of a loss with in-batch negatives learns from: alone, a row has no other row's texts
as negatives (and with no mined negative either, its loss is exactly 0)."""


@dataclass(frozen=True)
class Example:
    """One training example before it becomes a dataset row.

    Attributes:
        anchor: the query-side text.
        positive: the relevant document.
        negatives: hard negatives, hardest first as mined.
        scores: the scored losses only: the teacher's score of the positive, then of each negative.
        source: the ``source`` of the input row (labelled, title, ...), counted in the report.
    """

    anchor: str
    positive: str
    negatives: tuple[str, ...] = ()
    scores: tuple[float, ...] | None = None
    source: str = "unknown"

    def truncated(self, count: int) -> Example:
        """The same example keeping only its first ``count`` negatives (and their scores)."""
        scores = None if self.scores is None else self.scores[:count + 1]
        return Example(self.anchor, self.positive, self.negatives[:count], scores, self.source)

    def label(self, kind: str) -> list[float]:
        """The ``label`` column's value for a scored loss (:attr:`embedft.config.Loss.label`): ``margins``, the
        positive's score minus each negative's (MarginMSELoss), or ``scores``, the teacher's scores themselves
        (DistillKLDivLoss)."""
        positive, *negatives = self.scores or ()
        return [positive - score for score in negatives] if kind == "margins" else list(self.scores)


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
        negatives_per_example: examples per negative count, after merging and dropping groups.
        dropped_examples: examples left out because their group was too small for the loss (see
            :func:`drop_groups_below`); neither ``examples`` nor ``pairs_by_source`` counts them.
    """

    datasets: dict[str, Dataset]
    source_file: Path
    pairs_by_source: dict[str, int]
    examples: int
    skipped_rows: int = 0
    score_source: str | None = None
    negatives_per_example: dict[str, int] = field(default_factory=dict)
    dropped_examples: int = 0

    def trainer_dataset(self) -> DatasetDict:
        """The groups as a DatasetDict, so that :class:`AlignedProportionalBatchSampler` orders the batches
        (even for a single group: it also keeps the processes of a DDP run in step)."""
        return DatasetDict(self.datasets)

    @property
    def pairs(self) -> int:
        """Input rows used for training."""
        return sum(self.pairs_by_source.values())


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
    needs = LOSSES[settings.loss]
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


def score_warning(training: TrainingSet) -> str | None:
    """A warning when teacher scores come from BM25, whose scale differs from query to query."""
    if training.score_source and "bm25" in training.score_source:
        return (f"the teacher scores in {training.source_file} come from BM25, whose scale varies from query to query and "
                f"is far from the student's cosine; the score losses ({', '.join(n for n, loss in LOSSES.items() if loss.scored)}) "
                "learn best from cross-encoder or dense scores")
    return None


def mined_examples(rows: Iterable[MinedRow], needs: Loss) -> tuple[list[Example], Counter, int]:
    """Examples from mined rows for the contrastive and triplet losses: (examples, rows used by source, rows skipped)."""
    examples, used, skipped = [], Counter(), 0
    for row in rows:
        if needs.needs_negatives and not row.negatives:
            skipped += 1
            continue
        source = row.source or "unknown"
        used[source] += 1
        if needs.one_negative and row.negatives:
            examples += [Example(row.anchor, row.positive, (negative,), source=source) for negative in row.negatives]
        else:
            examples.append(Example(row.anchor, row.positive, row.negatives, source=source))
    return examples, used, skipped


def scored_examples(rows: Iterable[ScoredRow]) -> tuple[list[Example], Counter, int]:
    """MarginMSELoss and DistillKLDivLoss examples: each row's scored negatives with the teacher's scores
    (rows without a negative are skipped)."""
    examples, used, skipped = [], Counter(), 0
    for row in rows:
        if not row.negatives:
            skipped += 1
            continue
        source = row.source or "unknown"
        used[source] += 1
        examples.append(Example(row.anchor, row.positive, row.negatives, (row.positive_score, *row.negative_scores), source))
    return examples, used, skipped


def cosent_dataset(rows: list[ScoredRow]) -> tuple[Dataset, Counter]:
    """CoSENTLoss pairs: (anchor, positive, positive_score) and (anchor, negative_i, negative_score_i) per row."""
    columns: dict[str, list] = {"anchor": [], "text": [], "score": []}
    used: Counter = Counter()
    for row in rows:
        used[row.source or "unknown"] += 1
        for text, score in [(row.positive, row.positive_score), *zip(row.negatives, row.negative_scores)]:
            columns["anchor"].append(row.anchor)
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


def min_batch_rows(needs: Loss) -> int:
    """The fewest rows a batch of this loss learns from: :data:`MIN_IN_BATCH_ROWS` with in-batch negatives, else 1
    (a triplet or a margin row carries its whole loss)."""
    return MIN_IN_BATCH_ROWS if needs.in_batch_negatives else 1


def drop_groups_below(groups: dict[int, list[Example]], min_rows: int) -> tuple[dict[int, list[Example]], list[Example]]:
    """(the groups of at least ``min_rows`` examples, the examples of the others).

    After :func:`group_by_negative_count` only the group with the fewest negatives can be smaller than a batch:
    it has no smaller group to join. Below ``min_rows`` (a single row, for the losses with in-batch negatives)
    its batch teaches nothing: a row without negatives scores its positive against nothing else, so its
    MultipleNegativesRankingLoss is exactly 0, yet the step counts, the schedule advances and AdamW's momentum
    and weight decay still move the weights; a row with negatives misses every in-batch negative.

    Such rows are dropped (and counted) rather than folded into another group. A row cannot gain negatives:
    padding would invent or repeat texts, a false negative or a duplicate that the NO_DUPLICATES batches
    exclude. Folding would therefore cut every row of a larger group, at least a full batch of them, down to
    the lone group's count, throwing away the mined negatives of many rows to keep one.
    """
    kept = {count: group for count, group in groups.items() if len(group) >= min_rows}
    dropped = [example for count, group in groups.items() if count not in kept for example in group]
    return kept, dropped


def tuples_dataset(examples: list[Example], label: str = "") -> Dataset:
    """Columns anchor, positive, negative_1..k, and ``label`` (:meth:`Example.label` of kind ``label``) unless
    ``label`` is empty."""
    count = len(examples[0].negatives)
    columns: dict[str, list] = {"anchor": [e.anchor for e in examples], "positive": [e.positive for e in examples]}
    for i in range(count):
        columns[f"negative_{i + 1}"] = [e.negatives[i] for e in examples]
    if label:
        columns["label"] = [e.label(label) for e in examples]
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
    needs = LOSSES[settings.loss]
    score_source = None
    if needs.scored:
        source_file = negatives_dir / SCORED_FILE
        rows = read_scored(source_file)
        sources = sorted({row.score_source or "unknown" for row in rows})
        score_source = "+".join(sources)
        if settings.loss == "CoSENTLoss":
            dataset, used = cosent_dataset(rows)
            return TrainingSet({"pairs": dataset}, source_file, dict(sorted(used.items())), len(dataset),
                               score_source=score_source)
        examples, used, skipped = scored_examples(rows)
    else:
        source_file = negatives_dir / NEGATIVES_FILE
        examples, used, skipped = mined_examples(read_negatives(source_file), needs)
    if not examples:
        hint = (f": all {skipped} rows lack a negative, which params.yaml: train.loss {settings.loss} needs; set "
                "mine_negatives.num_negatives to 1 or more, or choose MultipleNegativesRankingLoss") if skipped else ""
        raise PipelineError(f"{source_file}: no training example{hint}")
    min_rows = min_batch_rows(needs)
    groups, dropped = drop_groups_below(group_by_negative_count(examples, min_group_size), min_rows)
    if not groups:
        raise PipelineError(f"{source_file}: only {len(dropped)} training example, but params.yaml: train.loss "
                            f"{settings.loss} needs at least {min_rows} in a batch (the other rows are its in-batch "
                            "negatives); add training pairs")
    if dropped:
        # A dropped group holds fewer than MIN_IN_BATCH_ROWS examples, and all the examples of a row share a group,
        # so each dropped example is a whole input row.
        used.subtract(Counter(example.source for example in dropped))
        used = +used
        if distributed.is_main_process():
            logger.warning(drop_warning(dropped, settings.loss, source_file))
    datasets = {f"negatives_{count}": tuples_dataset(group, needs.label) for count, group in groups.items()}
    kept = sum(len(group) for group in groups.values())
    return TrainingSet(datasets, source_file, dict(sorted(used.items())), kept, skipped, score_source,
                       {str(count): len(group) for count, group in groups.items()}, len(dropped))


def drop_warning(dropped: list[Example], loss: str, source_file: Path) -> str:
    """The warning for examples left out by :func:`drop_groups_below`."""
    counts = sorted({len(example.negatives) for example in dropped})
    negatives = " or ".join(str(count) for count in counts)
    return (f"{len(dropped)} training example(s) of {source_file} with {negatives} negative(s) left out "
            f"(reports: dropped_examples): no other example has as few negatives, and alone they would make a batch "
            f"of {len(dropped)}, from which {loss} learns nothing (it needs {MIN_IN_BATCH_ROWS} rows, each the "
            "others' in-batch negatives)")
