"""Training pairs from search logs: (query, clicked document), filtered by clicks and dwell time.

A log is a CSV/TSV file with a header row, or a JSON-lines file, with one click (or one aggregated
query-document row) per line:

    query            the text the user searched for (required)
    doc_id           the corpus id of the document clicked (required)
    clicks           clicks this row stands for (optional; 1 when absent)
    dwell_seconds    time spent on the document (optional)

Rows with the same query (after normalisation) and document are merged, their clicks summed. A click on a
file that `ingest` cut into passages (``guide.md`` for ``guide.md#1..n``) goes to the passage sharing the
most words with the query. Entries naming a document that is not in the corpus are counted and reported.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from embedft.config import SearchLogParams
from embedft.core import DataFileError, Document, Pair, clean_query, normalise_query, parse_json_line, read_lines
from embedft.corpus import chunks_by_document

LOG_COLUMNS = ("query", "doc_id", "clicks", "dwell_seconds")
LOG_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None}
BAD_ID = re.compile(r"[\t\n\r\x00-\x1f]")
WORDS = re.compile(r"\w+")
EXTRA_CELLS = "\0extra"


@dataclass(frozen=True)
class LogEntry:
    """One valid log row."""

    query: str
    doc_id: str
    clicks: int
    dwell_seconds: float | None


@dataclass
class SearchLogReport:
    """What reading the logs found; every number goes to reports/synthesize.json under ``search_log``."""

    files: int = 0
    rows: int = 0
    bad_rows_skipped: int = 0
    unknown_doc_entries: int = 0
    unknown_doc_examples: Counter = field(default_factory=Counter)
    resolved_to_chunk: int = 0
    no_dwell: int = 0
    short_dwell: int = 0
    duplicate_rows_merged: int = 0
    below_min_clicks: int = 0
    pairs: int = 0

    def as_metrics(self) -> dict[str, int]:
        return {
            "files": self.files,
            "rows": self.rows,
            "bad_rows_skipped": self.bad_rows_skipped,
            "unknown_doc_entries": self.unknown_doc_entries,
            "unknown_doc_ids": len(self.unknown_doc_examples),
            "resolved_to_chunk": self.resolved_to_chunk,
            "no_dwell": self.no_dwell,
            "short_dwell": self.short_dwell,
            "duplicate_rows_merged": self.duplicate_rows_merged,
            "below_min_clicks": self.below_min_clicks,
            "pairs": self.pairs,
        }


def log_files(location: Path) -> list[Path]:
    """The logs at ``location``: the file itself, or the *.csv, *.tsv and *.jsonl files under the folder
    (sorted, hidden ones left out); none when nothing is there.

    Raises:
        DataFileError: ``location`` is a file of another type.
    """
    if location.is_file():
        if location.suffix.lower() not in LOG_SUFFIXES:
            raise DataFileError(location, f"a search log must be a {', '.join(LOG_SUFFIXES)} file")
        return [location]
    if not location.is_dir():
        return []
    return [
        path for path in sorted(location.rglob("*"))
        if path.is_file() and path.suffix.lower() in LOG_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(location).parts)
    ]


def raw_rows(path: Path) -> tuple[list[str] | None, list[tuple[int, dict | None, str]]]:
    """A log file's header (None for JSON lines) and its data rows as (line number, row, problem);
    ``row`` is None when the line cannot be read, ``problem`` then says why."""
    delimiter = LOG_SUFFIXES[path.suffix.lower()]
    text = "\n".join(line for _, line in read_lines(path))
    rows: list[tuple[int, dict | None, str]] = []
    if delimiter is None:
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            row, problem = parse_json_line(line)
            if problem:
                rows.append((number, None, problem))
                continue
            rows.append((number, row, "") if isinstance(row, dict) else (number, None, "expected a JSON object"))
        return None, rows
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, restkey=EXTRA_CELLS, restval=None)
    header = list(reader.fieldnames or [])
    check_header(path, header)
    for row in reader:
        number = reader.line_num  # the line the row ends on (a quoted cell may span lines)
        if not any((value or "").strip() for key, value in row.items() if key != EXTRA_CELLS):
            continue
        if EXTRA_CELLS in row or None in row.values():
            rows.append((number, None, f"expected {len(header)} cells as in the header, got a different number"))
            continue
        rows.append((number, row, ""))
    return header, rows


def check_header(path: Path, header: list[str]) -> None:
    """A CSV/TSV header must name the required columns, each once (``csv`` would silently keep the last of two).

    Raises:
        DataFileError: on line 1, whatever ``on_bad_row`` says (every row would be misread).
    """
    if not header:
        return
    twice = sorted(name for name, count in Counter(header).items() if count > 1)
    if twice:
        raise DataFileError(path, f"header: the column(s) {', '.join(repr(n) for n in twice)} appear more than once; name "
                            "each column once", 1)
    missing = [name for name in ("query", "doc_id") if name not in header]
    if len(missing) == 2:
        raise DataFileError(path, f"the first line must be a header naming the columns ({', '.join(LOG_COLUMNS)}; query and "
                            f"doc_id required), but it has neither query nor doc_id: {header[:4]!r}", 1)


def parse_count(value, name: str, integer: bool) -> float | None:
    """A non-negative number from a log cell; None when the cell is empty. Raises ValueError with the reason."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (integer and not number.is_integer()):
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{name} must be {kind} of 0 or more, got {value!r}")
    return number


def unknown_columns(columns: list[str], settings: SearchLogParams) -> str:
    """A message naming the columns that are neither log columns nor ignored ('' when there are none)."""
    unknown = sorted(set(columns) - set(LOG_COLUMNS) - set(settings.ignore_columns))
    if not unknown:
        return ""
    return (f"unknown column(s) {', '.join(repr(c) for c in unknown)} (known: {', '.join(LOG_COLUMNS)}; "
            "list others in synthesize.search_log.ignore_columns)")


def parse_entry(row: dict, settings: SearchLogParams) -> LogEntry:
    """Validate one row. Raises ValueError naming what is wrong."""
    unknown = unknown_columns(list(row), settings)
    if unknown:
        raise ValueError(unknown)
    query, doc_id = row.get("query"), row.get("doc_id")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("missing or empty 'query'")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip() or BAD_ID.search(doc_id.strip()):
        raise ValueError(f"bad doc_id {doc_id!r}: expected a non-empty id on one line")
    clicks = parse_count(row.get("clicks"), "clicks", integer=True)
    dwell = parse_count(row.get("dwell_seconds"), "dwell_seconds", integer=False)
    return LogEntry(clean_query(query), doc_id.strip(), 1 if clicks is None else int(clicks), dwell)


def read_log_entries(paths: list[Path], settings: SearchLogParams, report: SearchLogReport) -> list[LogEntry]:
    """Every valid row of the logs; a bad row stops with its file and line, or is skipped and counted."""
    entries = []
    for path in paths:
        report.files += 1
        header, rows = raw_rows(path)
        unknown = unknown_columns(header or [], settings)
        if unknown and settings.on_bad_row == "error":
            raise DataFileError(path, f"header: {unknown}", 1)
        for number, row, problem in rows:
            report.rows += 1
            try:
                if row is None:
                    raise ValueError(problem)
                entries.append(parse_entry(row, settings))
            except ValueError as error:
                if settings.on_bad_row == "error":
                    raise DataFileError(path, f"{error} (synthesize.search_log.on_bad_row: skip skips such rows)", number) from None
                report.bad_rows_skipped += 1
    return entries


def word_overlap(query: str, text: str) -> int:
    return len(set(WORDS.findall(query.lower())) & set(WORDS.findall(text.lower())))


def resolve_document(entry: LogEntry, corpus: dict[str, Document], chunks: dict[str, list[str]]) -> str | None:
    """The corpus id an entry's click goes to: its own id, the best-matching passage of a chunked file, or None."""
    if entry.doc_id in corpus:
        return entry.doc_id
    if entry.doc_id in chunks:
        # max() keeps the first of equals, so ties go to the earliest passage.
        return max(chunks[entry.doc_id], key=lambda chunk: word_overlap(entry.query, corpus[chunk].full_text))
    return None


def search_log_pairs(location: Path, corpus: dict[str, Document], settings: SearchLogParams) -> tuple[list[Pair], SearchLogReport]:
    """(query, clicked document) pairs from the logs at ``location``, with counts of what was dropped and why.

    Args:
        location: a log file or a folder of them (``data.search_logs`` inside ``data.dir``).
        corpus: the documents; clicks on ids outside it are counted, not paired.
        settings: minimum clicks and dwell time, columns to ignore, what to do with a bad row.
    """
    report = SearchLogReport()
    entries = read_log_entries(log_files(location), settings, report)
    chunks = chunks_by_document(list(corpus))
    clicks: Counter = Counter()
    forms: dict[tuple[str, str], Counter] = defaultdict(Counter)
    kept_rows = 0
    for entry in entries:
        doc_id = resolve_document(entry, corpus, chunks)
        if doc_id is None:
            report.unknown_doc_entries += 1
            report.unknown_doc_examples[entry.doc_id] += 1
            continue
        report.resolved_to_chunk += doc_id != entry.doc_id
        if settings.min_dwell_seconds > 0 and entry.dwell_seconds is None:
            report.no_dwell += 1
            continue
        if entry.dwell_seconds is not None and entry.dwell_seconds < settings.min_dwell_seconds:
            report.short_dwell += 1
            continue
        key = (normalise_query(entry.query), doc_id)
        clicks[key] += entry.clicks
        forms[key][entry.query] += 1
        kept_rows += 1
    report.duplicate_rows_merged = kept_rows - len(clicks)
    pairs = []
    for key in sorted(clicks):
        if clicks[key] < settings.min_clicks:
            report.below_min_clicks += 1
            continue
        # The form users typed most often stands for the merged query (ties: the first in sort order).
        query = min(forms[key], key=lambda form: (-forms[key][form], form))
        pairs.append(Pair(query, corpus[key[1]].full_text, key[1], "search_log"))
    report.pairs = len(pairs)
    return pairs, report


def describe_unknown(report: SearchLogReport, location: Path) -> str:
    """A one-line warning about log entries whose document is not in the corpus ('' when there are none)."""
    if not report.unknown_doc_entries:
        return ""
    examples = ", ".join(repr(doc_id) for doc_id, _ in sorted(report.unknown_doc_examples.items(), key=lambda i: (-i[1], i[0]))[:5])
    return (f"{report.unknown_doc_entries} search-log entries in {location} name "
            f"{len(report.unknown_doc_examples)} documents that are not in the corpus (most clicked: {examples}); "
            "they are left out")
