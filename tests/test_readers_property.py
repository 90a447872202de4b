"""Property-based: every reader, fed random or mutated files, either reads them or raises the project's error.

Readers may never crash with anything but :class:`stages.errors.PipelineError` (whose subclass
``DataFileError`` names the file and line): no ``UnicodeDecodeError``, ``KeyError``, ``AttributeError`` or
``json`` exceptions leaking to the user as a traceback.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from embedft.core.beir import read_corpus, read_qrels, read_queries, read_split
from embedft.core.errors import DataFileError, PipelineError
from embedft.core.stage_files import read_pairs

VALID_FILES: dict[str, bytes] = {
    "corpus": "".join(json.dumps(row) + "\n" for row in [
        {"_id": "d1", "title": "One", "text": "First document."},
        {"_id": "d2", "text": "Second document, no title."},
        {"_id": "d3", "title": "Three", "text": "Third — with a non-ASCII dash."},
    ]).encode("utf-8"),
    "queries": "".join(json.dumps(row) + "\n" for row in [
        {"_id": "q1", "text": "first query"}, {"_id": "q2", "text": "second query"},
    ]).encode("utf-8"),
    "qrels": b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n",
    "records": "".join(json.dumps(row) + "\n" for row in [
        {"anchor": "a query", "positive": "a passage", "positive_id": "d1", "source": "labelled"},
    ]).encode("utf-8"),
}

READERS: dict[str, Callable[[Path], object]] = {
    "corpus": read_corpus,
    "queries": read_queries,
    "qrels": lambda path: read_qrels(path, {"q1", "q2"}, {"d1", "d2", "d3"}),
    "records": read_pairs,
}

# Byte-level edits that real exports produce: a BOM, CRLF endings, truncation, stray bytes, lost separators.
MUTATIONS = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 16)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(b"")),
    st.tuples(st.just("bom"), st.just(0), st.just(b"\xef\xbb\xbf")),
    st.tuples(st.just("crlf"), st.just(0), st.just(b"")),
)


def mutate(data: bytes, edits: list[tuple]) -> bytes:
    for kind, position, payload in edits:
        at = position % (len(data) + 1)
        if kind == "insert":
            data = data[:at] + payload + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + payload:]
        elif kind == "replace":
            data = data[:at] + payload + data[at + len(payload):]
        elif kind == "truncate":
            data = data[:at]
        elif kind == "bom":
            data = payload + data
        elif kind == "crlf":
            data = data.replace(b"\n", b"\r\n")
    return data


def read_or_clear_error(reader: Callable[[Path], object], data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.file"
        path.write_bytes(data)
        try:
            reader(path)
        except DataFileError as error:
            assert str(path) in str(error)  # the message names the file
        except PipelineError:
            pass


PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(name=st.sampled_from(sorted(READERS)), edits=st.lists(MUTATIONS, min_size=1, max_size=4))
def test_mutated_files_read_or_raise_the_project_error(name: str, edits: list[tuple]) -> None:
    read_or_clear_error(READERS[name], mutate(VALID_FILES[name], edits))


@PROPERTY_SETTINGS
@given(name=st.sampled_from(sorted(READERS)), data=st.binary(max_size=300))
def test_random_bytes_read_or_raise_the_project_error(name: str, data: bytes) -> None:
    read_or_clear_error(READERS[name], data)


@PROPERTY_SETTINGS
@given(name=st.sampled_from(sorted(READERS)),
       rows=st.lists(st.dictionaries(st.sampled_from(["_id", "text", "title", "anchor", "positive", "extra"]),
                                     st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                                               st.text(max_size=20), st.lists(st.integers(), max_size=2))),
                     max_size=5))
def test_json_rows_of_any_shape_read_or_raise_the_project_error(name: str, rows: list[dict]) -> None:
    read_or_clear_error(READERS[name], "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))


@PROPERTY_SETTINGS
@given(queries=st.binary(max_size=200), qrels=st.binary(max_size=200))
def test_split_folders_read_or_raise_the_project_error(queries: bytes, qrels: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "queries.jsonl").write_bytes(queries)
        (Path(folder) / "qrels.tsv").write_bytes(qrels)
        try:
            read_split(Path(folder))
        except PipelineError:
            pass
