"""Reading text and JSON-lines files line by line, every problem reported with its file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedft.core.errors import DataFileError

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise _DuplicateKey(key)
        row[key] = value
    return row


def parse_json_line(line: str) -> tuple[Any, str]:
    """One line of a JSON-lines file as (value, problem): ``problem`` is '' when the line is valid JSON, else why
    not. A key that appears twice in one object is a problem (``json`` would silently keep the last value)."""
    try:
        return json.loads(line, object_pairs_hook=_unique_keys), ""
    except _DuplicateKey as duplicate:
        return None, f"duplicate key '{duplicate.key}' in one JSON object (keep one)"
    except json.JSONDecodeError as error:
        return None, f"malformed JSON: {error.msg} (column {error.colno})"
    except RecursionError:
        return None, "malformed JSON: nested too deeply"


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
    if raw.startswith(UTF16_BOMS):
        raise DataFileError(path, "the file is UTF-16 (it starts with a UTF-16 byte-order mark): save it as UTF-8", 1)
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            yield number, line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as error:
            raise DataFileError(path, f"not valid UTF-8 ({error.reason} at byte {error.start} of the line): save the file "
                                "as UTF-8", number) from None


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
        row, problem = parse_json_line(line)
        if problem:
            if number == 1 and line.strip() in ("{", "["):
                problem = ("expected one JSON object per line (JSON lines), but the file looks like a single JSON document "
                           "spread over several lines: write each row as one line")
            raise DataFileError(path, problem, number)
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


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write one JSON object per line, keys sorted, so equal rows give equal bytes (call inside an atomic path)."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
