"""The files that stages hand to each other besides the dataset: the training pairs of `synthesize` and the
mined and scored rows of `mine_negatives`. One reader and one writer for each; the readers check every row
and name the file and line of a bad one."""

from __future__ import annotations

import math
from pathlib import Path

from embedft.core.artifacts import CORPUS_FILE, NEGATIVES_FILE, PAIRS_FILE, SCORED_FILE
from embedft.core.atomic import atomic_path
from embedft.core.errors import DataFileError, PipelineError
from embedft.core.jsonl import read_jsonl, write_jsonl
from embedft.core.rows import Document, MinedRow, Pair, ScoredRow


def write_pairs(folder: Path, pairs: list[Pair]) -> None:
    """Replace ``folder`` atomically with ``pairs.jsonl`` holding ``pairs`` in the order given."""
    with atomic_path(folder, is_dir=True) as out:
        write_jsonl(out / PAIRS_FILE, [pair.as_row() for pair in pairs])


def read_pairs(path: Path, corpus: dict[str, Document] | None = None) -> list[Pair]:
    """The training pairs of ``pairs.jsonl``, in file order.

    Args:
        path: the file.
        corpus: when given, a positive id that is not one of its documents is an error.
    """
    pairs, missing = [], []
    for line, row in read_jsonl(path, required=("anchor", "positive"), optional=("positive_id", "source")):
        pair = Pair(row["anchor"], row["positive"], row.get("positive_id") or "", row.get("source") or "")
        if corpus is not None and pair.positive_id and pair.positive_id not in corpus:
            missing.append((line, pair))
        pairs.append(pair)
    if missing:
        line, pair = missing[0]
        raise PipelineError(
            f"{path}:{line}: the positive '{pair.positive_id}' of the query {pair.anchor[:80]!r} is not in the corpus "
            f"({CORPUS_FILE}); {len(missing)} pair(s) name missing documents. Rerun `dvc repro` so the pairs come from this corpus"
        )
    return pairs


def write_negatives(folder: Path, rows: list[MinedRow], scored: list[ScoredRow]) -> None:
    """Replace ``folder`` atomically with ``negatives.jsonl`` and, when there are scored rows, ``scored.jsonl``."""
    with atomic_path(folder, is_dir=True) as out:
        write_jsonl(out / NEGATIVES_FILE, [row.as_row() for row in rows])
        if scored:
            write_jsonl(out / SCORED_FILE, [row.as_row() for row in scored])


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


def read_negatives(path: Path) -> list[MinedRow]:
    """The rows of ``negatives.jsonl``; an empty file is an error naming it."""
    return [MinedRow(row["anchor"], row["positive"], row.get("source") or "",
                     tuple(row[column] for column in negative_columns(row, path, line)))
            for line, row in read_jsonl(path, required=("anchor", "positive"), optional=("source",))]


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_scored(path: Path) -> list[ScoredRow]:
    """The rows of ``scored.jsonl``, checking that every negative has a finite score; errors name the file and line."""
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
        rows.append(ScoredRow(row["anchor"], row["positive"], row.get("source") or "", tuple(negatives),
                              float(row["positive_score"]), tuple(float(s) for s in scores), row.get("score_source") or ""))
    return rows
