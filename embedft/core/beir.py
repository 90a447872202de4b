"""Reading and validating the dataset files (BEIR layout) and the pipeline's own intermediate files.

Every reader reports a problem with the file and line it is on, as a :class:`DataFileError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.errors import DataFileError

Qrels = dict[str, dict[str, int]]
"""Relevance judgements: query id -> document id -> graded relevance (> 0 is relevant)."""


def normalise_text(text: str) -> str:
    """Lower-case and collapse whitespace: the form in which queries and anchors are compared."""
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass(frozen=True)
class Document:
    """One corpus entry."""

    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """Title and text as one passage: what a retriever sees."""
        return f"{self.title}\n{self.text}" if self.title else self.text


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) of a UTF-8 text file, tolerating a BOM and CRLF endings.

    Raises:
        DataFileError: the file is missing, or a line is not valid UTF-8.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFileError(path, "expected a file, found a folder") from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            yield number, line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            raise DataFileError(path, f"not valid UTF-8 ({error.reason} at byte {error.start})", number) from None


def read_jsonl(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[tuple[int, dict]]:
    """Read a JSON-lines file whose rows are objects with string fields.

    Args:
        path: the file.
        required: fields every row must have as a non-empty string.
        optional: fields that may be missing, but must be strings when present.

    Returns:
        (line number, row) pairs; blank lines are skipped.
    """
    rows = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFileError(path, f"malformed JSON: {error.msg} (column {error.colno})", number) from None
        if not isinstance(row, dict):
            raise DataFileError(path, f"expected a JSON object, got {type(row).__name__}", number)
        for field in required:
            value = row.get(field)
            if field not in row:
                raise DataFileError(path, f"missing field '{field}'", number)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and field == "_id":
                row[field] = value = str(value)
            if not isinstance(value, str) or not value.strip():
                raise DataFileError(path, f"field '{field}' must be a non-empty string", number)
        for field in optional:
            if row.get(field) is not None and not isinstance(row[field], str):
                raise DataFileError(path, f"field '{field}' must be a string", number)
        rows.append((number, row))
    if not rows:
        raise DataFileError(path, "file is empty")
    return rows


def _unique_by_id(path: Path, rows: list[tuple[int, dict]]) -> dict[int, dict]:
    first_line: dict[str, int] = {}
    for number, row in rows:
        if row["_id"] in first_line:
            raise DataFileError(path, f"duplicate _id '{row['_id']}' (first on line {first_line[row['_id']]})", number)
        first_line[row["_id"]] = number
    return dict(rows)


def read_corpus(path: Path) -> dict[str, Document]:
    """Read ``corpus.jsonl``: rows of ``{_id, text, title?}``, ids unique."""
    rows = _unique_by_id(path, read_jsonl(path, required=("_id", "text"), optional=("title",)))
    return {
        row["_id"]: Document(id=row["_id"], title=(row.get("title") or "").strip(), text=row["text"].strip())
        for row in rows.values()
    }


def read_queries(path: Path) -> dict[str, str]:
    """Read ``queries.jsonl``: rows of ``{_id, text}``, ids unique."""
    rows = _unique_by_id(path, read_jsonl(path, required=("_id", "text")))
    return {row["_id"]: row["text"].strip() for row in rows.values()}


def read_qrels(path: Path, query_ids: set[str] | dict | None = None, doc_ids: set[str] | dict | None = None) -> Qrels:
    """Read a qrels TSV (``query-id, corpus-id, score``; a header row is optional).

    Args:
        path: the file.
        query_ids: when given, a row naming any other query is an error.
        doc_ids: when given, a row naming any other document is an error.
    """
    qrels: Qrels = {}
    for number, line in read_lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if number == 1 and cells[0].strip().lower() in {"query-id", "query_id", "qid", "query"}:
            continue
        if len(cells) == 4:  # TREC layout: qid, iteration, docid, relevance
            cells = [cells[0], cells[2], cells[3]]
        if len(cells) != 3:
            raise DataFileError(path, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cells)}", number)
        query_id, doc_id, score_text = (cell.strip() for cell in cells)
        try:
            value = float(score_text)
        except ValueError:
            value = float("nan")
        if not value.is_integer():  # "2.0" is a grade some exports write; "0.5" or "high" is not
            raise DataFileError(path, f"score '{score_text}' is not an integer relevance grade", number)
        score = int(value)
        if query_ids is not None and query_id not in query_ids:
            raise DataFileError(path, f"unknown query id '{query_id}'", number)
        if doc_ids is not None and doc_id not in doc_ids:
            raise DataFileError(path, f"unknown corpus id '{doc_id}'", number)
        qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def write_qrels(path: Path, qrels: Qrels) -> None:
    """Write qrels as a sorted TSV with a header (call inside an atomic path)."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id in sorted(qrels):
            for doc_id in sorted(qrels[query_id]):
                handle.write(f"{query_id}\t{doc_id}\t{qrels[query_id][doc_id]}\n")


def relevant(qrels: Qrels) -> Qrels:
    """Only the judgements with relevance above zero, dropping queries left with none."""
    kept = {q: {d: s for d, s in docs.items() if s > 0} for q, docs in qrels.items()}
    return {q: docs for q, docs in kept.items() if docs}


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file written by an earlier stage (pairs, negatives)."""
    return [row for _, row in read_jsonl(path, required=("anchor", "positive"))]


def read_split(folder: Path) -> tuple[dict[str, str], Qrels]:
    """Read one split written by the `split` stage: (queries, qrels). An empty split gives two empty dicts."""
    queries_path = folder / "queries.jsonl"
    if not queries_path.exists() or not any(line.strip() for _, line in read_lines(queries_path)):
        return {}, {}
    queries = read_queries(queries_path)
    return queries, read_qrels(folder / "qrels.tsv", queries)
