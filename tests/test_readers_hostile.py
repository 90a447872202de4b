"""Hostile input to the readers (issue 18): files that used to be read wrongly without a word, or stopped with a
message naming the wrong cause. Each must be read correctly, or stop with one message naming the file (and line)
and what to change, or be read with a warning that names what was left out."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from embedft.config.params import DataParams, IngestParams, SearchLogParams, SplitParams
from embedft.core.beir import read_corpus, read_qrels, read_queries, read_split, write_qrels
from embedft.core.errors import DataFileError, PipelineError
from embedft.core.rows import Document
from embedft.core.stage_files import read_negatives, read_pairs, read_scored
from embedft.corpus.documents import length_outliers, read_document_folder
from embedft.corpus.html_text import html_to_text
from embedft.pairs.search_logs import search_log_pairs
from stages.ingest import ingest_corpus
from stages.split import split_labelled

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def tsv(*rows: str) -> str:
    return "".join(row.replace(" ", "\t") + "\n" for row in rows)


# --- 1: the qrels layout is the header's, and a 4-column file without one is not guessed ---------------------


def test_beir_header_with_a_fourth_column_is_read_as_beir(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("query-id corpus-id score annotator", "q1 1 3 alice", "q2 2 1 bob"))
    assert read_qrels(path) == {"q1": {"1": 3}, "q2": {"2": 1}}  # not (q1, "3", alice) as TREC
    named = write(tmp_path / "named.tsv", tsv("query-id corpus-id score annotator", "q1 d1 2 alice"))
    assert read_qrels(named, {"q1"}, {"d1"}) == {"q1": {"d1": 2}}  # not "unknown corpus id '2'"


def test_trec_header_is_read_as_trec(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("qid iteration docid relevance", "q1 0 7 2", "q1 0 8 0"))
    assert read_qrels(path) == {"q1": {"7": 2, "8": 0}}


def test_four_columns_without_header_that_read_both_ways_is_an_error(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("q1 0 3 1", "q2 0 4 1"))
    with pytest.raises(DataFileError) as caught:
        read_qrels(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "TREC" in message and "BEIR" in message
    assert "document '3', grade 1" in message and "document '0', grade 3" in message
    assert "query-id<TAB>corpus-id<TAB>score" in message and "qid<TAB>iteration<TAB>docid<TAB>relevance" in message


def test_four_columns_without_header_settled_by_the_corpus(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("q1 0 3 1", "q2 0 4 1"))
    assert read_qrels(path, {"q1", "q2"}, {"3", "4"}) == {"q1": {"3": 1}, "q2": {"4": 1}}  # no document '0': TREC


def test_four_columns_without_header_in_beir_order_asks_for_the_header(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("q1 d1 1 alice"))
    with pytest.raises(DataFileError, match=r"qrels.tsv:1: score 'alice' is not an integer .*add the header line"):
        read_qrels(path)


@pytest.mark.parametrize("header", ["query-id foo bar", "q doc grade", "qid docid iteration relevance"])
def test_unknown_header_names_the_expected_ones(tmp_path, header):
    path = write(tmp_path / "qrels.tsv", tsv(header, "q1 d1 1"))
    with pytest.raises(DataFileError) as caught:
        read_qrels(path)
    assert str(caught.value).startswith(f"{path}:1: unknown header")
    assert "query-id<TAB>corpus-id<TAB>score" in str(caught.value)


def test_first_line_that_is_neither_header_nor_judgement(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("q1 d1 high"))
    with pytest.raises(DataFileError, match=r":1: score 'high' is not an integer relevance grade \(nor is the line a header"):
        read_qrels(path)


def test_rows_must_match_the_header(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("query-id corpus-id score", "q1 d1 1", "q1 0 d2 1"))
    with pytest.raises(DataFileError, match=r"qrels.tsv:3: expected 3 tab-separated columns as in the header, got 4"):
        read_qrels(path)


# --- 7: labels that vanish -------------------------------------------------------------------------------------


def test_same_pair_judged_twice_differently_names_both_lines(tmp_path):
    path = write(tmp_path / "qrels.tsv", tsv("query-id corpus-id score", "q1 d1 1", "q2 d1 1", "q1 d1 2"))
    with pytest.raises(DataFileError) as caught:
        read_qrels(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ")
    assert "query 'q1' and document 'd1' are judged 2 here and 1 on line 2" in message


def test_same_pair_judged_twice_alike_is_counted_once_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "qrels.tsv", tsv("q1 d1 1", "q1 d1 1", "q1 d2 1"))
    with caplog.at_level(logging.WARNING, logger="embedft"):
        assert read_qrels(path) == {"q1": {"d1": 1, "d2": 1}}
    assert "1 rows repeat a judgement" in caplog.text and str(path) in caplog.text


@pytest.mark.parametrize("content, message", [("query-id\tcorpus-id\tscore\n", "the file has a header but no judgements"),
                                              ("", "file is empty"), ("\n \n", "file is empty")])
def test_qrels_without_judgements_is_an_error(tmp_path, content, message):
    path = write(tmp_path / "qrels.tsv", content)
    with pytest.raises(DataFileError) as caught:
        read_qrels(path)
    assert str(caught.value) == f"{path}: {message}"


def test_pipeline_split_with_unjudged_queries_still_reads(tmp_path):
    folder = tmp_path / "test"
    write(folder / "queries.jsonl", json.dumps({"_id": "q1", "text": "hello"}) + "\n")
    write_qrels(folder / "qrels.tsv", {})
    assert read_split(folder) == ({"q1": "hello"}, {})


@pytest.mark.parametrize("score", ["1e300", "2147483648", "-2147483649", "1e10"])
def test_grade_beyond_the_integer_range_is_an_error(tmp_path, score):
    path = write(tmp_path / "qrels.tsv", f"q1\td1\t1\nq1\td2\t{score}\n")
    with pytest.raises(DataFileError, match=rf"qrels.tsv:2: score '{re.escape(score)}' is outside the range of a relevance grade"):
        read_qrels(path)


def test_grades_at_the_edge_of_the_range_are_read(tmp_path):
    path = write(tmp_path / "qrels.tsv", "q1\td1\t2147483647\nq1\td2\t-2147483648\nq1\td3\t1e3\n")
    assert read_qrels(path) == {"q1": {"d1": 2**31 - 1, "d2": -(2**31), "d3": 1000}}


def dataset(tmp_path: Path) -> tuple[Path, dict[str, str], set[str]]:
    folder = tmp_path / "dataset"
    folder.mkdir()
    return folder, {f"q{i}": f"query {i}" for i in range(10)}, {f"d{i}" for i in range(10)}


def test_no_relevant_judgement_is_an_error_not_empty_splits(tmp_path):
    folder, queries, corpus_ids = dataset(tmp_path)
    write(folder / "qrels.tsv", tsv("query-id corpus-id score", "q0 d0 0", "q1 d1 -1"))
    with pytest.raises(PipelineError) as caught:
        split_labelled(DataParams(dir=str(folder)), SplitParams(), 0, corpus_ids, queries)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'qrels.tsv'}: no judgement has a score above 0 (scores found: -1, 0)")
    assert "the split would be empty" in message


def test_no_relevant_judgement_in_a_qrels_folder_file(tmp_path):
    folder, queries, corpus_ids = dataset(tmp_path)
    write(folder / "qrels" / "train.tsv", tsv("q0 d0 0"))
    write(folder / "qrels" / "test.tsv", tsv("q1 d1 1"))
    with pytest.raises(PipelineError, match=r"train.tsv: no judgement has a score above 0"):
        split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)


def test_queries_left_without_relevant_judgement_are_counted(tmp_path, capsys):
    folder, queries, corpus_ids = dataset(tmp_path)
    write(folder / "qrels.tsv", tsv(*[f"q{i} d{i} 1" for i in range(8)], "q8 d8 0", "q9 d9 0"))
    splits = split_labelled(DataParams(dir=str(folder)), SplitParams(), 0, corpus_ids, queries)
    assert sum(len(part) for part in splits.values()) == 8
    assert "warning: 2 of the 10 queries" in capsys.readouterr().out


@pytest.mark.parametrize("first, second", [("train", "dev"), ("dev", "test")])
def test_query_in_two_files_of_a_qrels_folder_is_an_error(tmp_path, first, second):
    folder, queries, corpus_ids = dataset(tmp_path)
    files = {"train": ["q0 d0 1", "q1 d1 1"], "dev": ["q2 d2 1"], "test": ["q3 d3 1"]}
    files[second].append(files[first][0])
    for name, rows in files.items():
        write(folder / "qrels" / f"{name}.tsv", tsv(*rows))
    with pytest.raises(PipelineError) as caught:
        split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)
    assert f"1 queries are in both {first}.tsv and {second}.tsv, e.g. '{files[first][0].split()[0]}'" in str(caught.value)


# --- 8: documents that vanish or should not exist --------------------------------------------------------------


def settings(**overrides) -> IngestParams:
    return IngestParams(**{"max_chunk_words": 0, **overrides})


def test_unclosed_title_still_yields_the_text_and_is_logged(tmp_path, caplog):
    docs = tmp_path / "docs"
    write(docs / "page.html", "<html><head><title>Setup</head><body><p>Install it with pip.</p></body></html>")
    write(docs / "bare.html", "<title>Only words, never closed")
    with caplog.at_level(logging.WARNING, logger="embedft"):
        corpus, report = read_document_folder(docs, settings())
    assert corpus["page.html"] == Document("page.html", "Setup", "Install it with pip.")
    assert corpus["bare.html"].text == "Only words, never closed"
    assert f"{docs / 'page.html'}: <title> is not closed" in caplog.text
    assert not report.skipped_documents


def test_unclosed_comment_leaks_no_markup():
    extracted = html_to_text("<p>Visible.</p><!-- TODO: <p>draft</p> <b>secret</b>")
    assert extracted.text == "Visible."
    assert "<" not in extracted.text and "secret" not in extracted.text
    assert extracted.problems and "comment" in extracted.problems[0]
    assert html_to_text("<p>a</p><!-- closed --><p>b</p>").problems == ()


def test_html_that_gives_no_text_is_named_in_the_log_and_the_report(tmp_path, caplog):
    docs = tmp_path / "docs"
    write(docs / "ok.md", "# Fine\nText.")
    write(docs / "hidden.html", "<!-- the whole page is in a comment that never ends <p>text</p>")
    with caplog.at_level(logging.WARNING, logger="embedft"):
        corpus, report = read_document_folder(docs, settings())
    assert list(corpus) == ["ok.md"]
    assert report.skipped_documents == {"hidden.html": "no text (a comment ('<!--' without '-->') is not closed: the last 63 "
                                                        "characters are left out)"}
    assert report.as_metrics(1)["skipped_documents"] == report.skipped_documents
    assert "hidden.html" in caplog.text and "no text and is left out" in caplog.text


@pytest.mark.parametrize("name, data", [
    ("nul.md", b"\x00" * 500 + b"# T\n" + b"\x01\x02\x1b" * 50),
    ("utf16.txt", "Plain text saved as UTF-16 without a byte-order mark.\n".encode("utf-16-le")),
    ("binary.txt", bytes(range(0, 32)) * 20 + b"some words"),
])
def test_file_of_control_characters_is_refused(tmp_path, name, data):
    docs = tmp_path / "docs"
    write(docs / "ok.md", "# Fine\nText.")
    write(docs / name, data)
    with pytest.raises(DataFileError) as caught:
        read_document_folder(docs, settings())
    message = str(caught.value)
    assert message.startswith(f"{docs / name}: ")
    assert "control characters" in message and "not UTF-8 text" in message


def test_a_few_control_characters_are_still_text(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "log.txt", "\x1b[1mBold\x1b[0m words in a terminal log, then plenty of ordinary text after them.\f\n")
    corpus, _ = read_document_folder(docs, settings())
    assert list(corpus) == ["log.txt"]


JSONL_READERS = {  # reader, a valid first line (or ''), a line with a key twice, that key
    "corpus": (read_corpus, '{"_id": "d0", "text": "z"}', '{"_id": "d1", "text": "a", "text": "b"}', "text"),
    "queries": (read_queries, '{"_id": "q0", "text": "z"}', '{"_id": "q1", "_id": "q2", "text": "a"}', "_id"),
    "pairs": (read_pairs, "", '{"anchor": "a", "positive": "p", "source": "x", "source": "y"}', "source"),
    "negatives": (read_negatives, "", '{"anchor": "a", "positive": "p", "negative_1": "n", "negative_1": "m"}', "negative_1"),
    "scored": (read_scored, "", '{"anchor": "a", "positive": "p", "negatives": ["n"], "negative_scores": [0.1], '
                                '"positive_score": 0.9, "meta": {"k": 1, "k": 2}}', "k"),
}


@pytest.mark.parametrize("name", sorted(JSONL_READERS))
def test_duplicate_key_in_a_json_object_names_file_line_and_key(tmp_path, name):
    reader, good, line, key = JSONL_READERS[name]
    path = write(tmp_path / f"{name}.jsonl", (good + "\n" if good else "") + line + "\n")
    with pytest.raises(DataFileError) as caught:
        reader(path)
    assert str(caught.value) == f"{path}:{2 if good else 1}: duplicate key '{key}' in one JSON object (keep one)"


def test_duplicate_key_in_a_search_log_row(tmp_path):
    path = write(tmp_path / "log.jsonl", '{"query": "parse json", "doc_id": "json.loads", "doc_id": "os.listdir"}\n')
    corpus = {"json.loads": Document("json.loads", "", "Parse."), "os.listdir": Document("os.listdir", "", "List.")}
    with pytest.raises(DataFileError, match=r"log.jsonl:1: duplicate key 'doc_id' in one JSON object"):
        search_log_pairs(path, corpus, SearchLogParams())
    _, report = search_log_pairs(path, corpus, SearchLogParams(on_bad_row="skip"))
    assert report.bad_rows_skipped == 1


def test_deeply_nested_json_is_a_located_error(tmp_path):
    path = write(tmp_path / "corpus.jsonl", "[" * 100_000 + "\n")
    with pytest.raises(DataFileError, match=r"corpus.jsonl:1: malformed JSON"):
        read_corpus(path)


# --- 9: a document far longer than the others -------------------------------------------------------------------


def big_corpus(tmp_path: Path) -> Path:
    rows = [{"_id": f"d{i}", "text": f"An ordinary document number {i} of a few words."} for i in range(50)]
    rows.insert(7, {"_id": "huge", "text": "word " * 1_000_000})  # 5 MB
    return write(tmp_path / "corpus.jsonl", "".join(json.dumps(row) + "\n" for row in rows))


def test_ingest_warns_about_length_outliers_and_reports_them(tmp_path, capsys):
    corpus, report = ingest_corpus(big_corpus(tmp_path), IngestParams())
    assert len(corpus) == 51 and corpus["huge"].text.startswith("word word")  # still ingested, as given
    outliers = report["length_outliers"]
    assert outliers["count"] == 1 and list(outliers["longest"]) == ["huge"]
    assert outliers["longest"]["huge"] == len(corpus["huge"].full_text)
    out = capsys.readouterr().out
    assert "ingest: warning: 1 document is over 100 times the median length" in out and "'huge'" in out


def test_ordinary_lengths_are_not_outliers(tmp_path):
    corpus = {f"d{i}": Document(f"d{i}", "", "x" * (100 + 90 * i)) for i in range(100)}  # 100 .. 9010 characters
    assert length_outliers(corpus).documents == {}
    _, report = ingest_corpus(ROOT / "data" / "sample" / "corpus.jsonl", IngestParams())
    assert set(report) == {"documents", "markup"} and report["documents"] == report["markup"]["passages"] == 1703  # no outliers


def test_length_outliers_in_a_folder_are_reported(tmp_path):
    docs = tmp_path / "docs"
    for i in range(20):
        write(docs / f"page{i}.md", f"# Page {i}\nA short page.")
    write(docs / "dump.txt", "x" * 20_000)  # one word: no chunking cuts it
    _, report = ingest_corpus(docs, IngestParams())
    assert list(report["length_outliers"]["longest"]) == ["dump.txt"]


# --- 13: messages that named the wrong cause ---------------------------------------------------------------------


def test_pretty_printed_json_is_named_as_such(tmp_path):
    path = write(tmp_path / "corpus.jsonl", '{\n  "_id": "d1",\n  "text": "a"\n}\n')
    with pytest.raises(DataFileError, match=r"corpus.jsonl:1: expected one JSON object per line .* a single JSON document"):
        read_corpus(path)


def test_utf16_file_is_named_as_such(tmp_path):
    path = write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "a"}\n'.encode("utf-16"))
    with pytest.raises(DataFileError, match=r"queries.jsonl:1: the file is UTF-16 .*save it as UTF-8"):
        read_queries(path)


def test_space_separated_qrels_is_named_as_such(tmp_path):
    path = write(tmp_path / "qrels.tsv", "q1 d1 1\n")
    with pytest.raises(DataFileError, match=r"qrels.tsv:1: .*separated by spaces, not tabs"):
        read_qrels(path)


def test_qrels_naming_a_file_that_ingest_cut(tmp_path):
    path = write(tmp_path / "qrels.tsv", "q1\tguide.md\t1\n")
    with pytest.raises(DataFileError, match=r"unknown corpus id 'guide.md': ingest cut that file into passages .*max_chunk_words: 0"):
        read_qrels(path, {"q1"}, {"guide.md#1", "guide.md#2"})


def test_search_log_without_header(tmp_path):
    path = write(tmp_path / "log.csv", "parse json,json.loads\nlist files,os.listdir\n")
    with pytest.raises(DataFileError, match=r"log.csv:1: the first line must be a header naming the columns"):
        search_log_pairs(path, {"json.loads": Document("json.loads", "", "x")}, SearchLogParams(on_bad_row="skip"))


def test_search_log_column_named_twice(tmp_path):
    path = write(tmp_path / "log.csv", "query,doc_id,doc_id\nparse json,json.loads,os.listdir\n")
    with pytest.raises(DataFileError, match=r"log.csv:1: header: the column\(s\) 'doc_id' appear more than once"):
        search_log_pairs(path, {"json.loads": Document("json.loads", "", "x")}, SearchLogParams())


def test_missing_corpus_names_the_key(tmp_path):
    with pytest.raises(DataFileError, match=r"corpus.jsonl: file not found \(data.corpus names"):
        ingest_corpus(tmp_path / "corpus.jsonl", IngestParams())


# --- 14: links out of the dataset folder -------------------------------------------------------------------------


def test_link_out_of_the_dataset_folder_is_logged_and_followed(tmp_path, caplog):
    outside = write(tmp_path / "elsewhere" / "notes.md", "# Notes\nFrom outside.")
    write(tmp_path / "elsewhere" / "more" / "a.md", "# A\nText.")
    dataset = tmp_path / "dataset"
    docs = dataset / "docs"
    write(docs / "inside.md", "# Inside\nText.")
    (docs / "notes.md").symlink_to(outside)
    (docs / "inside-link.md").symlink_to(docs / "inside.md")
    (docs / "more").symlink_to(tmp_path / "elsewhere" / "more", target_is_directory=True)
    (docs / "gone.md").symlink_to(tmp_path / "nothing.md")
    with caplog.at_level(logging.WARNING, logger="embedft"):
        corpus, report = read_document_folder(docs, settings(), dataset)
    assert sorted(corpus) == ["inside-link.md", "inside.md", "notes.md"]  # the file link is followed
    assert f"{docs / 'notes.md'} is a link to {outside.resolve()}, outside the dataset folder {dataset}" in caplog.text
    assert "inside-link.md" not in caplog.text  # a link that stays inside is not news
    assert set(report.skipped_documents) == {"more", "gone.md"}
    assert "links to folders are not followed" in report.skipped_documents["more"]
    assert f"{docs / 'gone.md'} is a link to" in caplog.text


def test_docs_say_paths_are_used_as_given():
    text = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    assert "used as given" in text and "symlink" in text.lower()
