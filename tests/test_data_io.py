"""Readers for corpus, queries, qrels and splits: good input, tolerated encodings, and located errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from embedft.core.beir import read_corpus, read_qrels, read_queries, read_split, relevant, write_qrels
from embedft.core.errors import DataFileError, PipelineError
from embedft.core.rows import Document, Pair
from embedft.core.stage_files import read_pairs


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


# --- corpus -------------------------------------------------------------------------------------------------


def test_read_corpus_good_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        jsonl(
            {"_id": "d1", "title": " Title one ", "text": " First text. "},
            {"_id": "d2", "text": "No title here."},
            {"_id": 3, "title": None, "text": "Numeric id."},
        ),
        encoding="utf-8",
    )
    corpus = read_corpus(path)
    assert list(corpus) == ["d1", "d2", "3"]
    assert corpus["d1"] == Document(id="d1", title="Title one", text="First text.")
    assert corpus["d2"].title == ""
    assert corpus["d1"].full_text == "Title one\nFirst text."
    assert corpus["d2"].full_text == "No title here."
    assert corpus["3"].id == "3"


def test_tiny_dataset_reads(tiny_dataset):
    corpus = read_corpus(tiny_dataset / "corpus.jsonl")
    queries = read_queries(tiny_dataset / "queries.jsonl")
    qrels = read_qrels(tiny_dataset / "qrels.tsv", queries, corpus)
    assert len(corpus) == 12 and len(queries) == 12
    assert qrels["q0"] == {"json.dumps": 1}
    assert sum(len(docs) for docs in qrels.values()) == 12


def test_bom_and_crlf_tolerated(tmp_path):
    text = jsonl({"_id": "d1", "title": "T", "text": "alpha"}, {"_id": "d2", "text": "beta"}).replace("\n", "\r\n")
    path = write_bytes(tmp_path / "corpus.jsonl", b"\xef\xbb\xbf" + text.encode("utf-8"))
    corpus = read_corpus(path)
    assert list(corpus) == ["d1", "d2"]  # the BOM did not become part of the first key
    assert corpus["d2"].text == "beta"

    queries = write_bytes(tmp_path / "queries.jsonl", b"\xef\xbb\xbf" + b'{"_id": "q1", "text": "hi"}\r\n')
    assert read_queries(queries) == {"q1": "hi"}

    qrels = write_bytes(tmp_path / "qrels.tsv", b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\r\nq1\td1\t1\r\n")
    assert read_qrels(qrels, {"q1"}, {"d1", "d2"}) == {"q1": {"d1": 1}}


def test_blank_lines_are_skipped_but_numbering_kept(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "text": "a"}\n\n   \n{"_id": "d1", "text": "b"}\n', encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_corpus(path)
    assert f"{path}:4:" in str(caught.value)
    assert "first on line 1" in str(caught.value)


def test_malformed_json_line_reports_path_and_line(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"}\n{"_id": "d3", "text": \n', encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_corpus(path)
    error = caught.value
    assert f"{path}:3:" in str(error)
    assert "malformed JSON" in str(error)
    assert error.line == 3 and error.path == str(path)
    assert isinstance(error, PipelineError)


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": "a"}\n["q2", "b"]\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r":2: expected a JSON object, got list"):
        read_queries(path)


def test_missing_field(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "text": "a"}\n{"_id": "d2", "title": "no text"}\n', encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_corpus(path)
    assert f"{path}:2:" in str(caught.value)
    assert "missing field 'text'" in str(caught.value)


def test_missing_id_in_queries(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text('{"text": "no id"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=rf"{re.escape(str(path))}:1: missing field '_id'"):
        read_queries(path)


@pytest.mark.parametrize("value", ['""', '"   "', "null", "[1]"])
def test_required_field_must_be_non_empty_string(tmp_path, value):
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": ' + value + "}\n", encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_queries(path)
    assert f"{path}:1:" in str(caught.value)
    assert "field 'text' must be a non-empty string" in str(caught.value)


def test_optional_title_must_be_string(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "title": 5, "text": "a"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r":1: field 'title' must be a string"):
        read_corpus(path)


def test_duplicate_id_names_both_lines(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        jsonl({"_id": "a", "text": "1"}, {"_id": "b", "text": "2"}, {"_id": "c", "text": "3"}, {"_id": "b", "text": "4"}),
        encoding="utf-8",
    )
    with pytest.raises(DataFileError) as caught:
        read_corpus(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4:")
    assert "duplicate _id 'b'" in message
    assert "first on line 2" in message


def test_duplicate_query_id(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text(jsonl({"_id": "q", "text": "1"}, {"_id": "q", "text": "2"}), encoding="utf-8")
    with pytest.raises(DataFileError, match=r":2: duplicate _id 'q' \(first on line 1\)"):
        read_queries(path)


def test_non_utf8_bytes_report_line(tmp_path):
    path = write_bytes(
        tmp_path / "corpus.jsonl",
        b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "ok"}\n{"_id": "d3", "text": "caf\xe9"}\n',
    )
    with pytest.raises(DataFileError) as caught:
        read_corpus(path)
    assert f"{path}:3:" in str(caught.value)
    assert "not valid UTF-8" in str(caught.value)
    assert caught.value.line == 3


def test_non_utf8_in_qrels_reports_line(tmp_path):
    path = write_bytes(tmp_path / "qrels.tsv", b"q1\td1\t1\nq\xff\td1\t1\n")
    with pytest.raises(DataFileError, match=rf"{re.escape(str(path))}:2: not valid UTF-8"):
        read_qrels(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "corpus.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_corpus(path)
    assert str(caught.value) == f"{path}: file is empty"


def test_missing_file(tmp_path):
    path = tmp_path / "missing.jsonl"
    for reader in (read_corpus, read_queries, read_qrels):
        with pytest.raises(DataFileError) as caught:
            reader(path)
        assert str(caught.value) == f"{path}: file not found"


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataFileError, match="expected a file, found a folder"):
        read_corpus(tmp_path)


# --- qrels --------------------------------------------------------------------------------------------------


def test_qrels_header_optional(tmp_path):
    with_header = tmp_path / "a.tsv"
    with_header.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq2\td1\t0\n", encoding="utf-8")
    without = tmp_path / "b.tsv"
    without.write_text("q1\td1\t1\nq1\td2\t2\nq2\td1\t0\n", encoding="utf-8")
    expected = {"q1": {"d1": 1, "d2": 2}, "q2": {"d1": 0}}
    assert read_qrels(with_header) == expected
    assert read_qrels(without) == expected


def test_qrels_trec_four_columns(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("q1\t0\td1\t1\nq1\t0\td2\t0\nq2\tQ0\td3\t2\n", encoding="utf-8")
    assert read_qrels(path) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}


def test_qrels_float_score_accepted(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("q1\td1\t2.0\n", encoding="utf-8")
    assert read_qrels(path) == {"q1": {"d1": 2}}


def test_qrels_unknown_query_id(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n", encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_qrels(path, {"q1": "text"}, {"d1"})
    assert f"{path}:3:" in str(caught.value)
    assert "unknown query id 'q9'" in str(caught.value)


def test_qrels_unknown_corpus_id(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("q1\td1\t1\nq1\tnope\t1\n", encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_qrels(path, {"q1"}, {"d1": object()})
    assert f"{path}:2:" in str(caught.value)
    assert "unknown corpus id 'nope'" in str(caught.value)


def test_qrels_ids_not_checked_when_not_given(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("anything\tgoes\t1\n", encoding="utf-8")
    assert read_qrels(path) == {"anything": {"goes": 1}}


def test_qrels_wrong_column_count(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("q1\td1\t1\nq1 d2 1\n", encoding="utf-8")
    with pytest.raises(DataFileError) as caught:
        read_qrels(path)
    assert f"{path}:2:" in str(caught.value)
    assert "expected 3 tab-separated columns" in str(caught.value)
    assert "got 1" in str(caught.value)


def test_qrels_score_not_a_number(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("q1\td1\thigh\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=rf"{re.escape(str(path))}:1: score 'high' is not an integer relevance grade"):
        read_qrels(path)


def test_write_qrels_round_trip_sorted(tmp_path):
    qrels = {"q2": {"b": 1, "a": 2}, "q1": {"z": 1}}
    path = tmp_path / "out.tsv"
    write_qrels(path, qrels)
    assert path.read_text(encoding="utf-8") == "query-id\tcorpus-id\tscore\nq1\tz\t1\nq2\ta\t2\nq2\tb\t1\n"
    assert read_qrels(path) == qrels


def test_relevant_drops_zero_and_empty_queries():
    assert relevant({"q1": {"a": 0, "b": 1}, "q2": {"c": 0}}) == {"q1": {"b": 1}}


# --- records and splits -------------------------------------------------------------------------------------


def test_read_pairs_requires_anchor_and_positive(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(jsonl({"anchor": "a", "positive": "p", "source": "title"}, {"anchor": "b"}), encoding="utf-8")
    with pytest.raises(DataFileError, match=r":2: missing field 'positive'"):
        read_pairs(path)
    path.write_text(jsonl({"anchor": "a", "positive": "p", "source": "title"}), encoding="utf-8")
    assert read_pairs(path) == [Pair("a", "p", "", "title")]


def test_read_split_empty_split(tmp_path):
    folder = tmp_path / "test"
    folder.mkdir()
    (folder / "queries.jsonl").write_text("", encoding="utf-8")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n", encoding="utf-8")
    assert read_split(folder) == ({}, {})


def test_read_split_missing_folder(tmp_path):
    assert read_split(tmp_path / "absent") == ({}, {})


def test_read_split_with_data(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "queries.jsonl").write_text(jsonl({"_id": "q1", "text": "hello"}), encoding="utf-8")
    write_qrels(folder / "qrels.tsv", {"q1": {"d1": 1}})
    assert read_split(folder) == ({"q1": "hello"}, {"q1": {"d1": 1}})


def test_read_split_qrels_must_match_queries(tmp_path):
    folder = tmp_path / "dev"
    folder.mkdir()
    (folder / "queries.jsonl").write_text(jsonl({"_id": "q1", "text": "hello"}), encoding="utf-8")
    write_qrels(folder / "qrels.tsv", {"q2": {"d1": 1}})
    with pytest.raises(DataFileError, match=r"qrels\.tsv:2: unknown query id 'q2'"):
        read_split(folder)


def test_qrels_fractional_score_is_an_error(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0.5\n")
    with pytest.raises(DataFileError, match=rf"{re.escape(str(path))}:3: score '0.5' is not an integer relevance grade"):
        read_qrels(path)
