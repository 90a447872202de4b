"""Search logs: CSV, TSV and JSON lines; click and dwell thresholds; merged duplicates; unknown documents
counted and reported; bad rows stop with file and line, or are skipped and counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedft.config.params import SearchLogParams
from embedft.core.errors import DataFileError
from embedft.core.rows import Document, Pair
from embedft.pairs.search_logs import describe_unknown, log_files, search_log_pairs

CORPUS = {
    "json.loads": Document("json.loads", "json.loads", "Deserialize a JSON document to a Python object."),
    "os.listdir": Document("os.listdir", "os.listdir", "Return a list of the entries in the directory given by path."),
    "guide.md#1": Document("guide.md#1", "Guide", "# Install\nRun pip install to get the package."),
    "guide.md#2": Document("guide.md#2", "Guide: Configure", "# Configure\nEdit the settings file to change the colour theme."),
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def pairs_of(location: Path, **settings) -> tuple[list[tuple[str, str]], dict]:
    pairs, report = search_log_pairs(location, CORPUS, SearchLogParams(**settings))
    assert all(p.source == "search_log" and p.positive == CORPUS[p.positive_id].full_text for p in pairs)
    return [(p.anchor, p.positive_id) for p in pairs], report.as_metrics()


def test_csv_duplicates_merged_and_clicks_summed(tmp_path):
    log = write(tmp_path / "logs" / "clicks.csv", "query,doc_id,clicks\n"
                "parse json,json.loads,1\n"
                "Parse JSON?,json.loads,2\n"
                "  parse  json ,json.loads,\n"          # empty clicks count as one
                "list a folder,os.listdir,1\n"
                "parse json,os.listdir,1\n")
    pairs, report = pairs_of(log.parent, min_clicks=2)
    assert pairs == [("parse json", "json.loads")]  # 4 clicks merged; the others have 1
    assert report["rows"] == 5 and report["duplicate_rows_merged"] == 2 and report["below_min_clicks"] == 2
    assert report["pairs"] == 1 and report["files"] == 1
    pairs, _ = pairs_of(log.parent, min_clicks=1)
    assert pairs == [("list a folder", "os.listdir"), ("parse json", "json.loads"), ("parse json", "os.listdir")]


def test_merged_query_takes_the_most_typed_form(tmp_path):
    log = write(tmp_path / "log.jsonl", jsonl(
        {"query": "Parse JSON", "doc_id": "json.loads"},
        {"query": "parse json", "doc_id": "json.loads"},
        {"query": "parse json", "doc_id": "json.loads"},
    ))
    assert pairs_of(log)[0] == [("parse json", "json.loads")]


def test_jsonl_and_tsv_with_dwell_threshold(tmp_path):
    write(tmp_path / "logs" / "a.jsonl", jsonl(
        {"query": "read json", "doc_id": "json.loads", "dwell_seconds": 45.5},
        {"query": "bounce", "doc_id": "json.loads", "dwell_seconds": 2},
        {"query": "no dwell recorded", "doc_id": "os.listdir"},
        {"query": "numeric id", "doc_id": 7},
    ))
    write(tmp_path / "logs" / "b.tsv", "query\tdoc_id\tdwell_seconds\nfolder entries\tos.listdir\t31\n")
    write(tmp_path / "logs" / "README.md", "not a log")
    pairs, report = pairs_of(tmp_path / "logs", min_dwell_seconds=30)
    assert pairs == [("folder entries", "os.listdir"), ("read json", "json.loads")]
    assert report["short_dwell"] == 1 and report["no_dwell"] == 1 and report["files"] == 2 and report["rows"] == 5
    assert report["unknown_doc_entries"] == 1  # the numeric id '7' is valid but not in the corpus
    pairs, report = pairs_of(tmp_path / "logs")  # no dwell threshold: rows without dwell are fine
    assert ("no dwell recorded", "os.listdir") in pairs and ("bounce", "json.loads") in pairs


def test_unknown_documents_are_counted_and_reported(tmp_path):
    log = write(tmp_path / "log.csv", "query,doc_id\nq one,json.loads\nq two,gone.page\nq three,gone.page\nq four,other.gone\n")
    pairs, report = pairs_of(log)
    assert pairs == [("q one", "json.loads")]
    assert report["unknown_doc_entries"] == 3 and report["unknown_doc_ids"] == 2
    _, full = search_log_pairs(log, CORPUS, SearchLogParams())
    message = describe_unknown(full, log)
    assert "3 search-log entries" in message and "2 documents that are not in the corpus" in message
    assert "'gone.page', 'other.gone'" in message and str(log) in message
    _, report = search_log_pairs(write(tmp_path / "ok.csv", "query,doc_id\nq,json.loads\n"), CORPUS, SearchLogParams())
    assert describe_unknown(report, log) == ""


def test_click_on_a_chunked_file_goes_to_its_best_passage(tmp_path):
    log = write(tmp_path / "log.csv", "query,doc_id\nchange colour theme,guide.md\ninstall package,guide.md\nunrelated words,guide.md\n")
    pairs, report = pairs_of(log)
    assert pairs == [("change colour theme", "guide.md#2"), ("install package", "guide.md#1"), ("unrelated words", "guide.md#1")]
    assert report["resolved_to_chunk"] == 3 and report["unknown_doc_entries"] == 0


def test_unknown_csv_column_is_an_error_at_the_header(tmp_path):
    log = write(tmp_path / "log.csv", "query,doc_id,timestamp\nq,json.loads,2024-01-01\n")
    with pytest.raises(DataFileError, match=r"log.csv:1: header: unknown column\(s\) 'timestamp'.*ignore_columns"):
        pairs_of(log)
    assert pairs_of(log, ignore_columns=["timestamp"])[0] == [("q", "json.loads")]
    pairs, report = pairs_of(log, on_bad_row="skip")
    assert pairs == [] and report["bad_rows_skipped"] == 1


@pytest.mark.parametrize("row, message", [
    ({"query": "q", "doc_id": "json.loads", "session": "s1"}, r"unknown column\(s\) 'session'"),
    ({"query": "q", "doc_id": ""}, "bad doc_id ''"),
    ({"query": "q", "doc_id": ["json.loads"]}, "bad doc_id"),
    ({"query": "q", "doc_id": "json\tloads"}, "bad doc_id"),
    ({"query": "q", "doc_id": 1.5}, "bad doc_id"),
    ({"doc_id": "json.loads"}, "missing or empty 'query'"),
    ({"query": "q", "doc_id": "json.loads", "clicks": "many"}, "clicks must be a number, got 'many'"),
    ({"query": "q", "doc_id": "json.loads", "clicks": 1.5}, "clicks must be a whole number of 0 or more"),
    ({"query": "q", "doc_id": "json.loads", "dwell_seconds": -3}, "dwell_seconds must be a number of 0 or more"),
])
def test_bad_jsonl_row_names_file_and_line_or_is_skipped(tmp_path, row, message):
    log = write(tmp_path / "log.jsonl", jsonl({"query": "good", "doc_id": "json.loads"}, row))
    with pytest.raises(DataFileError, match=f"log.jsonl:2: {message}"):
        pairs_of(log)
    pairs, report = pairs_of(log, on_bad_row="skip")
    assert pairs == [("good", "json.loads")] and report["bad_rows_skipped"] == 1 and report["rows"] == 2


def test_malformed_lines(tmp_path):
    log = write(tmp_path / "log.jsonl", '{"query": "good", "doc_id": "json.loads"}\n\n{"query": \n[1, 2]\n')
    with pytest.raises(DataFileError, match="log.jsonl:3: malformed JSON"):
        pairs_of(log)
    assert pairs_of(log, on_bad_row="skip")[1]["bad_rows_skipped"] == 2
    csv_log = write(tmp_path / "log.csv", 'query,doc_id\ngood,json.loads\n\n"a, b",json.loads,extra\nshort\n')
    with pytest.raises(DataFileError, match="log.csv:4: expected 2 cells as in the header"):
        pairs_of(csv_log)
    pairs, report = pairs_of(csv_log, on_bad_row="skip")
    assert pairs == [("good", "json.loads")] and report["bad_rows_skipped"] == 2


def test_log_locations(tmp_path):
    assert log_files(tmp_path / "absent") == []
    write(tmp_path / "logs" / ".hidden" / "x.csv", "query,doc_id\n")
    write(tmp_path / "logs" / "2024" / "01.csv", "query,doc_id\n")
    write(tmp_path / "logs" / "00.jsonl", "")
    assert [p.relative_to(tmp_path / "logs").as_posix() for p in log_files(tmp_path / "logs")] == ["00.jsonl", "2024/01.csv"]
    with pytest.raises(DataFileError, match="a search log must be a .csv, .tsv, .jsonl file"):
        log_files(write(tmp_path / "log.xlsx", ""))
    assert search_log_pairs(tmp_path / "absent", CORPUS, SearchLogParams())[0] == []


def test_pairs_are_sorted_and_deterministic(tmp_path):
    log = write(tmp_path / "log.csv", "query,doc_id\nzeta,json.loads\nalpha,os.listdir\nmid,json.loads\n")
    first, _ = search_log_pairs(log, CORPUS, SearchLogParams())
    assert first == search_log_pairs(log, CORPUS, SearchLogParams())[0]
    assert [p.anchor for p in first] == ["alpha", "mid", "zeta"]
    assert isinstance(first[0], Pair)
