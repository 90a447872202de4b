"""Hard-negative mining: the rank window, exclusions of labelled positives and copies, random top-up."""

from __future__ import annotations

import random

import numpy as np
import pytest

from stages.data_io import Document
from stages.errors import PipelineError
from stages.mine_negatives import choose_negatives, mine_hard_negatives, positives_by_anchor
from stages.params import MineNegativesParams


def window(range_min: int, range_max: int, num: int, sampling: str = "top") -> MineNegativesParams:
    return MineNegativesParams(range_min=range_min, range_max=range_max, num_negatives=num, sampling=sampling)


# --- choose_negatives ----------------------------------------------------------------------------------------


def test_choose_respects_window_top():
    chosen, topped = choose_negatives(list(range(20)), set(), window(5, 10, 3), 20, random.Random(0))
    assert chosen == [5, 6, 7]
    assert topped == 0


def test_choose_uses_candidate_order_not_row_numbers():
    candidates = [9, 3, 7, 1, 8, 0, 2]
    chosen, _ = choose_negatives(candidates, set(), window(2, 5, 3), 10, random.Random(0))
    assert chosen == [7, 1, 8]


def test_choose_never_returns_excluded():
    chosen, topped = choose_negatives(list(range(20)), {5, 7}, window(5, 10, 3), 20, random.Random(0))
    assert chosen == [6, 8, 9]
    assert topped == 0


def test_choose_window_end_is_exclusive():
    chosen, topped = choose_negatives(list(range(20)), {5, 6, 7, 8}, window(5, 10, 2), 10, random.Random(0))
    assert chosen[0] == 9
    assert 10 not in chosen and len(chosen) == 2
    assert topped == 1  # only row 9 was left in the window; the second is a random top-up


def test_choose_tops_up_randomly_when_window_short():
    excluded = {0, 1}
    for seed in range(20):
        chosen, topped = choose_negatives(list(range(8)), excluded, window(5, 10, 5), 30, random.Random(seed))
        assert chosen[:3] == [5, 6, 7]
        assert topped == 2
        assert len(chosen) == 5 and len(set(chosen)) == 5
        assert not set(chosen) & excluded
        assert all(0 <= row < 30 for row in chosen)


def test_choose_top_up_is_seeded():
    first = choose_negatives(list(range(8)), set(), window(5, 10, 6), 1000, random.Random(11))
    again = choose_negatives(list(range(8)), set(), window(5, 10, 6), 1000, random.Random(11))
    assert first == again


def test_choose_stops_when_corpus_exhausted():
    chosen, topped = choose_negatives([0, 1, 2, 3], {0, 1, 2}, window(0, 4, 3), 4, random.Random(0))
    assert chosen == [3]
    assert topped == 0


def test_choose_zero_negatives():
    assert choose_negatives(list(range(10)), set(), window(0, 5, 0), 10, random.Random(0)) == ([], 0)


def test_choose_random_sampling_seeded_and_within_window():
    candidates = list(range(50))
    settings = window(10, 30, 4, sampling="random")
    outcomes = set()
    for seed in range(10):
        chosen, topped = choose_negatives(candidates, {12, 15}, settings, 50, random.Random(seed))
        assert chosen == choose_negatives(candidates, {12, 15}, settings, 50, random.Random(seed))[0]
        assert topped == 0
        assert len(set(chosen)) == 4
        assert all(10 <= row < 30 and row not in {12, 15} for row in chosen)
        outcomes.add(tuple(chosen))
    assert len(outcomes) > 1  # not simply the top of the window


# --- mine_hard_negatives ------------------------------------------------------------------------------------


def scored_corpus(texts_and_scores: list[tuple[str, float]]) -> tuple[dict[str, Document], np.ndarray]:
    """Documents d0..dn whose 1-d vectors make the ranking for the anchor vector [1] their score order."""
    corpus = {f"d{i}": Document(f"d{i}", "", text) for i, (text, _) in enumerate(texts_and_scores)}
    vectors = np.array([[score] for _, score in texts_and_scores], dtype=np.float32)
    return corpus, vectors


def pair(anchor: str, positive: str, positive_id: str, source: str = "labelled") -> dict:
    return {"anchor": anchor, "positive": positive, "positive_id": positive_id, "source": source}


def negatives_of(row: dict) -> list[str]:
    return [row[f"negative_{i}"] for i in range(1, 100) if f"negative_{i}" in row]


def test_positives_by_anchor_pools():
    pooled = positives_by_anchor([pair("A", "x", "d1"), pair("A", "y", "d2"), pair("B", "z", "d1")])
    assert pooled == {"A": {"d1", "d2"}, "B": {"d1"}}


def test_mine_excludes_pooled_positives_and_copies_of_positive():
    corpus, vectors = scored_corpus(
        [
            ("alpha text", 0.99),  # d0
            ("beta text", 0.98),  # d1
            ("gamma text", 0.97),  # d2
            ("alpha text", 0.96),  # d3: a copy of d0 under another id
            ("delta text", 0.50),  # d4
            ("eps text", 0.40),  # d5
            ("zeta text", 0.30),  # d6
        ]
    )
    pairs = [pair("A", "beta text", "d1"), pair("A", "gamma text", "d2"), pair("B", "alpha text", "d0", "title")]
    anchors = {"A": np.array([1.0], dtype=np.float32), "B": np.array([1.0], dtype=np.float32)}
    rows, report = mine_hard_negatives(pairs, corpus, vectors, anchors, window(0, 7, 2), seed=0, chunk_size=3)

    assert [(r["anchor"], r["positive"], r["source"]) for r in rows] == [
        ("A", "beta text", "labelled"),
        ("A", "gamma text", "labelled"),
        ("B", "alpha text", "title"),
    ]
    for row in rows:
        assert set(row) == {"anchor", "positive", "source", "negative_1", "negative_2"}
    # d2 ('gamma text') is a positive of A through the *other* pair, so it is never a negative of A.
    assert negatives_of(rows[0]) == ["alpha text", "alpha text"]
    assert negatives_of(rows[1]) == ["alpha text", "alpha text"]
    # For B, d0 is the labelled positive and d3 has the same text: both are skipped.
    assert negatives_of(rows[2]) == ["beta text", "gamma text"]
    for row in rows:
        assert row["positive"] not in negatives_of(row)
    assert report["pairs"] == 3
    assert report["negatives_per_pair"] == 2
    assert report["negatives_from_window"] == 6
    assert report["negatives_random_topup"] == 0
    assert report["mean_positive_document_score"] == pytest.approx((0.98 + 0.97 + 0.99) / 3, abs=1e-6)
    assert report["mean_negative_score"] == pytest.approx((0.99 + 0.96) * 2 / 6 + (0.98 + 0.97) / 6, abs=1e-6)


def test_mine_uses_each_anchor_vector_and_skips_range_min():
    # Two directions: anchor "x-ish" ranks x-documents first, anchor "y-ish" the y-documents.
    texts = ["x one", "x two", "x three", "y one", "y two", "y three"]
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]], dtype=np.float32)
    corpus = {f"d{i}": Document(f"d{i}", "", t) for i, t in enumerate(texts)}
    pairs = [pair("x-ish", "x one", "d0"), pair("y-ish", "y one", "d3")]
    anchors = {"x-ish": np.array([1.0, 0.0], dtype=np.float32), "y-ish": np.array([0.0, 1.0], dtype=np.float32)}
    rows, report = mine_hard_negatives(pairs, corpus, vectors, anchors, window(2, 4, 1), seed=0, chunk_size=50)
    # Ranks 0 and 1 (the positive and the runner-up) are skipped; rank 2 is taken.
    assert rows[0]["negative_1"] == "x three"
    assert rows[1]["negative_1"] == "y three"
    assert report["negatives_random_topup"] == 0


def test_mine_tops_up_when_window_is_exhausted():
    corpus, vectors = scored_corpus([(f"doc number {i}", 1.0 - i / 10) for i in range(8)])
    pairs = [pair("A", "doc number 0", "d0")]
    rows, report = mine_hard_negatives(pairs, corpus, vectors, {"A": np.array([1.0], dtype=np.float32)},
                                       window(0, 3, 4), seed=5, chunk_size=2)
    negatives = negatives_of(rows[0])
    assert negatives[:2] == ["doc number 1", "doc number 2"]
    assert len(negatives) == 4 and len(set(negatives)) == 4
    assert "doc number 0" not in negatives
    assert report["negatives_from_window"] == 2
    assert report["negatives_random_topup"] == 2
    again, _ = mine_hard_negatives(pairs, corpus, vectors, {"A": np.array([1.0], dtype=np.float32)},
                                   window(0, 3, 4), seed=5, chunk_size=2)
    assert again == rows


def test_mine_random_sampling_is_seeded():
    corpus, vectors = scored_corpus([(f"doc number {i}", 1.0 - i / 100) for i in range(40)])
    pairs = [pair("A", "doc number 0", "d0")]
    anchors = {"A": np.array([1.0], dtype=np.float32)}
    settings = window(1, 30, 3, sampling="random")
    first, _ = mine_hard_negatives(pairs, corpus, vectors, anchors, settings, seed=1, chunk_size=7)
    second, _ = mine_hard_negatives(pairs, corpus, vectors, anchors, settings, seed=1, chunk_size=7)
    assert first == second
    draws = {tuple(negatives_of(mine_hard_negatives(pairs, corpus, vectors, anchors, settings, seed=s, chunk_size=7)[0][0]))
             for s in range(6)}
    assert len(draws) > 1
    allowed = {f"doc number {i}" for i in range(1, 30)}
    for draw in draws:
        assert set(draw) <= allowed


def test_mine_never_picks_copy_of_another_positive_of_same_anchor():
    corpus, vectors = scored_corpus([("alpha text", 0.99), ("beta text", 0.98), ("alpha text", 0.97), ("other", 0.1)])
    pairs = [pair("A", "alpha text", "d0"), pair("A", "beta text", "d1")]
    rows, _ = mine_hard_negatives(pairs, corpus, vectors, {"A": np.array([1.0], dtype=np.float32)},
                                  window(0, 4, 1), seed=0, chunk_size=10)
    positives_of_a = {"alpha text", "beta text"}
    for row in rows:
        assert not set(negatives_of(row)) & positives_of_a


def short_corpus_rows():
    """Four documents, three negatives wanted: anchor A has two positives, so its rows can only get two."""
    corpus, vectors = scored_corpus([("text 0", 0.9), ("text 1", 0.8), ("text 2", 0.7), ("text 3", 0.6)])
    pairs = [pair("A", "text 0", "d0"), pair("A", "text 1", "d1"), pair("B", "text 2", "d2")]
    anchors = {"A": np.array([1.0], dtype=np.float32), "B": np.array([1.0], dtype=np.float32)}
    return mine_hard_negatives(pairs, corpus, vectors, anchors, window(0, 4, 3), seed=0, chunk_size=10)


def test_corpus_too_small_for_num_negatives_is_a_clear_error():
    with pytest.raises(PipelineError, match=r"mine_negatives\.num_negatives is 3.*only 2 documents"):
        short_corpus_rows()


def test_report_counts_negatives_actually_written():
    """Window [0, 2) holds one usable candidate per pair, so the second negative of each is a random top-up."""
    corpus, vectors = scored_corpus([(f"text {i}", 1.0 - i / 10) for i in range(8)])
    pairs = [pair("A", "text 0", "d0"), pair("B", "text 1", "d1")]
    anchors = {"A": np.array([1.0], dtype=np.float32), "B": np.array([1.0], dtype=np.float32)}
    rows, report = mine_hard_negatives(pairs, corpus, vectors, anchors, window(0, 2, 2), seed=0, chunk_size=10)
    written = sum(len(negatives_of(row)) for row in rows)
    assert written == 4
    assert report["negatives_from_window"] == 2
    assert report["negatives_random_topup"] == 2
