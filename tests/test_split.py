"""Splitting labelled queries: a seeded partition by query, and qrels folders used as given."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedft.config.params import DataParams, SplitParams
from embedft.core.errors import DataFileError, PipelineError
from stages.split import split_labelled, split_query_ids, subset

IDS = [f"q{i:03d}" for i in range(100)]


def test_every_id_exactly_once():
    parts = split_query_ids(IDS, SplitParams(), seed=42)
    combined = parts["train"] + parts["dev"] + parts["test"]
    assert sorted(combined) == sorted(IDS)
    assert len(combined) == len(set(combined))
    for name in ("train", "dev", "test"):
        assert parts[name] == sorted(parts[name])


def test_deterministic_for_seed_and_input_order():
    first = split_query_ids(IDS, SplitParams(), seed=7)
    assert split_query_ids(IDS, SplitParams(), seed=7) == first
    assert split_query_ids(list(reversed(IDS)), SplitParams(), seed=7) == first


def test_other_seed_differs():
    assert split_query_ids(IDS, SplitParams(), seed=1) != split_query_ids(IDS, SplitParams(), seed=2)


@pytest.mark.parametrize(
    "fractions, sizes",
    [((0.6, 0.1, 0.3), (60, 10, 30)), ((0.8, 0.0, 0.2), (80, 0, 20)), ((0.5, 0.5, 0.0), (50, 50, 0)), ((0.0, 0.0, 1.0), (0, 0, 100))],
)
def test_respects_fractions(fractions, sizes):
    split = SplitParams(train_fraction=fractions[0], dev_fraction=fractions[1], test_fraction=fractions[2])
    parts = split_query_ids(IDS, split, seed=0)
    assert (len(parts["train"]), len(parts["dev"]), len(parts["test"])) == sizes


def test_small_input_still_partitions():
    for n in range(0, 8):
        ids = [f"q{i}" for i in range(n)]
        parts = split_query_ids(ids, SplitParams(), seed=0)
        assert sorted(parts["train"] + parts["dev"] + parts["test"]) == sorted(ids)


def test_subset():
    qrels = {"a": {"d": 1}, "b": {"e": 1}}
    assert subset(qrels, ["b", "zz"]) == {"b": {"e": 1}}


# --- split_labelled ------------------------------------------------------------------------------------------


def make_dataset(tmp_path: Path, n_queries: int = 20) -> tuple[Path, dict[str, str], set[str]]:
    folder = tmp_path / "dataset"
    folder.mkdir()
    queries = {f"q{i}": f"query {i}" for i in range(n_queries)}
    corpus_ids = {f"d{i}" for i in range(n_queries)}
    return folder, queries, corpus_ids


def write_tsv(path: Path, rows: list[tuple[str, str, int]], header: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] if header else []
    lines += [f"{q}\t{d}\t{s}" for q, d, s in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_single_qrels_file_is_cut_by_query(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    rows = [(f"q{i}", f"d{i}", 1) for i in range(20)] + [("q0", "d1", 2), ("q1", "d0", 0)]
    write_tsv(folder / "qrels.tsv", rows)
    data = DataParams(dir=str(folder))
    splits = split_labelled(data, SplitParams(), 3, corpus_ids, queries)
    assert set(splits) == {"train", "dev", "test"}
    assert (len(splits["train"]), len(splits["dev"]), len(splits["test"])) == (12, 2, 6)
    all_ids = [q for part in splits.values() for q in part]
    assert sorted(all_ids) == sorted(queries)
    merged = {q: docs for part in splits.values() for q, docs in part.items()}
    assert merged["q0"] == {"d0": 1, "d1": 2}
    assert merged["q1"] == {"d1": 1}  # the zero judgement is dropped
    assert split_labelled(data, SplitParams(), 3, corpus_ids, queries) == splits


def test_single_qrels_file_unknown_doc_is_located(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    write_tsv(folder / "qrels.tsv", [("q0", "d0", 1), ("q1", "missing-doc", 1)])
    with pytest.raises(DataFileError) as caught:
        split_labelled(DataParams(dir=str(folder)), SplitParams(), 0, corpus_ids, queries)
    assert "qrels.tsv:3:" in str(caught.value)
    assert "unknown corpus id 'missing-doc'" in str(caught.value)


def test_qrels_folder_without_dev_cuts_dev_from_train(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    train_ids = [f"q{i}" for i in range(14)]
    test_ids = [f"q{i}" for i in range(14, 20)]
    write_tsv(folder / "qrels" / "train.tsv", [(q, f"d{q[1:]}", 1) for q in train_ids])
    write_tsv(folder / "qrels" / "test.tsv", [(q, f"d{q[1:]}", 1) for q in test_ids], header=False)
    data = DataParams(dir=str(folder), qrels="qrels")
    splits = split_labelled(data, SplitParams(train_fraction=0.6, dev_fraction=0.1, test_fraction=0.3), 5, corpus_ids, queries)
    # Test is kept exactly as given.
    assert splits["test"] == {q: {f"d{q[1:]}": 1} for q in test_ids}
    # Dev is cut from train in the ratio dev:train = 0.1:0.6, i.e. 1/7 of 14 = 2 queries.
    assert len(splits["dev"]) == 2
    assert len(splits["train"]) == 12
    assert sorted([*splits["train"], *splits["dev"]]) == sorted(train_ids)
    assert not set(splits["train"]) & set(splits["dev"])
    assert not set(splits["dev"]) & set(splits["test"])


def test_qrels_folder_with_dev_used_as_given(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    write_tsv(folder / "qrels" / "train.tsv", [("q0", "d0", 1), ("q1", "d1", 1)])
    write_tsv(folder / "qrels" / "dev.tsv", [("q2", "d2", 1)])
    write_tsv(folder / "qrels" / "test.tsv", [("q3", "d3", 1), ("q4", "d4", 0)])
    splits = split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)
    assert splits == {"train": {"q0": {"d0": 1}, "q1": {"d1": 1}}, "dev": {"q2": {"d2": 1}}, "test": {"q3": {"d3": 1}}}


def test_qrels_folder_needs_test(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    write_tsv(folder / "qrels" / "train.tsv", [("q0", "d0", 1)])
    with pytest.raises(PipelineError) as caught:
        split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)
    assert str(folder / "qrels") in str(caught.value)
    assert "needs test.tsv" in str(caught.value)


def test_qrels_folder_only_test(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    write_tsv(folder / "qrels" / "test.tsv", [("q0", "d0", 1)])
    splits = split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)
    assert splits == {"train": {}, "dev": {}, "test": {"q0": {"d0": 1}}}


def test_train_test_overlap_is_an_error(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    write_tsv(folder / "qrels" / "train.tsv", [(f"q{i}", f"d{i}", 1) for i in range(10)])
    write_tsv(folder / "qrels" / "dev.tsv", [("q10", "d10", 1)])
    write_tsv(folder / "qrels" / "test.tsv", [("q3", "d3", 1), ("q15", "d15", 1)])
    with pytest.raises(PipelineError) as caught:
        split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)
    message = str(caught.value)
    assert str(folder / "qrels") in message
    assert "1 queries are in both train.tsv and test.tsv" in message
    assert "'q3'" in message


def test_qrels_folder_unknown_query_is_located(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    write_tsv(folder / "qrels" / "train.tsv", [("q0", "d0", 1)])
    write_tsv(folder / "qrels" / "test.tsv", [("q1", "d1", 1), ("q999", "d1", 1)])
    with pytest.raises(DataFileError) as caught:
        split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)
    assert "test.tsv:3:" in str(caught.value)
    assert "unknown query id 'q999'" in str(caught.value)


def test_train_test_overlap_is_an_error_even_when_cut_into_dev(tmp_path):
    folder, queries, corpus_ids = make_dataset(tmp_path)
    train_ids = [f"q{i}" for i in range(10)]
    write_tsv(folder / "qrels" / "train.tsv", [(q, f"d{q[1:]}", 1) for q in train_ids])
    # With seed 0 and the default fractions, q6 is the query cut from train.tsv into dev.
    share = 0.1 / 0.7
    cut = split_query_ids(train_ids, SplitParams(train_fraction=1 - share, dev_fraction=share, test_fraction=0.0), 0)
    assert cut["dev"] == ["q6"]
    write_tsv(folder / "qrels" / "test.tsv", [("q6", "d6", 1), ("q15", "d15", 1)])
    with pytest.raises(PipelineError, match="in both train.tsv and test.tsv"):
        split_labelled(DataParams(dir=str(folder), qrels="qrels"), SplitParams(), 0, corpus_ids, queries)
