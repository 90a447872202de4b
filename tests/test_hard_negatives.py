"""Choosing hard negatives: filter order and bounds, sampling, no padding, lazy cross-encoder rounds, the audit."""

from __future__ import annotations

import numpy as np
import pytest

from embedft.core.rows import Document, Pair
from embedft.mining.corpus_index import CorpusIndex
from embedft.mining.selection import (
    COPY_OF_POSITIVE,
    CROSS_ENCODER,
    KEPT,
    LABELLED_POSITIVE,
    MAX_SCORE,
    REASONS,
    RELATIVE_MARGIN,
    Window,
    apply_filters,
    cross_encoder_judge,
    drop_counts,
    fill,
    mine_hard_negatives,
    new_selection,
    relative_bound,
    score_positives,
)


def pair(anchor: str, positive: str, positive_id: str, source: str = "labelled") -> Pair:
    return Pair(anchor, positive, positive_id, source)


def window(scores: list[float], first_rank: int = 0, rows: list[int] | None = None) -> Window:
    rows = list(range(len(scores))) if rows is None else rows
    return Window(np.array(rows, dtype=np.int64), np.arange(first_rank, first_rank + len(scores)),
                  np.array(scores, dtype=np.float32))


def corpus_of(texts: list[str]) -> dict[str, Document]:
    return {f"d{i}": Document(f"d{i}", "", text) for i, text in enumerate(texts)}


# --- bounds and filters --------------------------------------------------------------------------------------


def test_relative_bound_follows_sentence_transformers():
    assert relative_bound(0.8, 0.05) == pytest.approx(0.76)
    assert relative_bound(-0.2, 0.05) == pytest.approx(-0.21)  # a negative positive score: the bound is below it
    assert relative_bound(0.5, 0.0) == 0.5


def test_filters_mark_the_first_reason_that_applies():
    selection = new_selection(pair("q", "p", "d0"), window([0.95, 0.9, 0.85, 0.7, 0.5, 0.3]), 0.8, "top", 0)
    apply_filters(selection, excluded={0}, copies={1}, max_score=0.8, relative_margin=0.05)
    # d0: labelled positive (also above max_score); d1: copy; d2: 0.85 > max_score; d3: 0.7 <= 0.76 kept
    assert [REASONS[r] for r in selection.reasons] == [
        "labelled_positive", "copy_of_positive", "max_score", "", "", ""]
    apply_filters(selection, set(), set(), None, 0.5)  # bound 0.4: only 0.3 survives among the kept
    assert selection.reasons.tolist() == [LABELLED_POSITIVE, COPY_OF_POSITIVE, MAX_SCORE, RELATIVE_MARGIN, RELATIVE_MARGIN, KEPT]


def test_filters_off_drop_only_known_positives():
    selection = new_selection(pair("q", "p", "d0"), window([0.99, 0.98]), 0.1, "top", 0)
    apply_filters(selection, set(), set(), None, None)
    assert selection.reasons.tolist() == [KEPT, KEPT]


# --- choosing ------------------------------------------------------------------------------------------------


def test_top_takes_survivors_in_rank_order_and_never_pads():
    selection = new_selection(pair("q", "p", "d9"), window([0.9, 0.5, 0.4, 0.3], first_rank=10), 0.8, "top", 0)
    apply_filters(selection, {1}, set(), None, 0.05)  # 0.9 > 0.76 dropped; row 1 excluded
    fill([selection], 5)
    assert selection.chosen_rows == [2, 3]  # two survivors for five places: the row stays short
    assert selection.ranks[selection.chosen].tolist() == [12, 13]


def test_empty_window_gives_no_negative():
    selection = new_selection(pair("q", "p", "d0"), window([]), 0.5, "top", 0)
    fill([selection], 3)
    assert selection.chosen == []


def test_random_sampling_is_seeded_per_pair_and_stays_in_the_survivors():
    scores = [0.5 - i / 100 for i in range(30)]
    draws = set()
    for seed in range(8):
        first = new_selection(pair("q", "p", "dx"), window(scores), 0.9, "random", seed)
        again = new_selection(pair("q", "p", "dx"), window(scores), 0.9, "random", seed)
        for selection in (first, again):
            apply_filters(selection, {3, 4}, set(), None, None)
            fill([selection], 4)
        assert first.chosen_rows == again.chosen_rows
        assert len(set(first.chosen_rows)) == 4 and not {3, 4} & set(first.chosen_rows)
        draws.add(tuple(first.chosen_rows))
    assert len(draws) > 1


def test_random_draw_does_not_depend_on_other_pairs():
    alone = new_selection(pair("q", "p", "d1"), window([0.1] * 20), 0.9, "random", 7)
    other = new_selection(pair("other", "x", "d2"), window([0.1] * 20), 0.9, "random", 7)
    together = new_selection(pair("q", "p", "d1"), window([0.1] * 20), 0.9, "random", 7)
    fill([alone], 3)
    fill([other, together], 3)
    assert alone.chosen_rows == together.chosen_rows


# --- cross-encoder rounds ------------------------------------------------------------------------------------


class FakeScorer:
    """Scores a pair by a lookup on the document text; records every call."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.calls: list[list[tuple[str, str]]] = []

    def __call__(self, pairs):
        self.calls.append(list(pairs))
        return [self.scores[document] for _, document in pairs]


def test_cross_encoder_is_consulted_lazily_and_applies_its_margin():
    texts = ["t0", "t1", "t2", "t3", "t4", "t5"]
    scorer = FakeScorer({"pos": 0.9, "t0": 0.95, "t1": 0.1, "t2": 0.88, "t3": 0.2, "t4": 0.3, "t5": 0.4})
    selection = new_selection(pair("q", "pos", ""), window([0.1] * 6), 0.9, "top", 0)
    fill([selection], 2, cross_encoder_judge(scorer, texts, margin=0.05))  # bound 0.855
    assert selection.chosen_rows == [1, 3]
    assert [REASONS[r] for r in selection.reasons[:4]] == ["cross_encoder", "", "cross_encoder", ""]
    # Round 1 asks for two candidates (t0, t1) with the positive; round 2 for the one still missing (t2); round 3 for t3.
    assert [[d for _, d in call] for call in scorer.calls] == [["pos", "t0", "t1"], ["t2"], ["t3"]]
    assert np.isnan(selection.cross_scores[4:]).all()  # never needed
    assert selection.positive_cross_score == pytest.approx(0.9)


def test_cross_encoder_batches_all_pairs_of_a_round_together():
    scorer = FakeScorer({"pos": 0.9, "t0": 0.1, "t1": 0.1})
    selections = [new_selection(pair(a, "pos", ""), window([0.1, 0.1]), 0.9, "top", 0) for a in ("a", "b", "c")]
    fill(selections, 1, cross_encoder_judge(scorer, ["t0", "t1"], margin=0.05))
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 6  # three positives and three candidates at once
    assert all(s.chosen_rows == [0] for s in selections)


def test_cross_encoder_without_margin_only_rescores():
    scorer = FakeScorer({"pos": 0.1, "t0": 0.99})
    selection = new_selection(pair("q", "pos", ""), window([0.1]), 0.9, "top", 0)
    fill([selection], 1, cross_encoder_judge(scorer, ["t0"], margin=None))
    assert selection.chosen_rows == [0] and selection.cross_scores[0] == pytest.approx(0.99)


def test_score_positives_fills_the_ones_never_judged():
    scorer = FakeScorer({"pos": 0.7})
    selection = new_selection(pair("q", "pos", ""), window([]), 0.9, "top", 0)
    score_positives([selection], scorer)
    assert selection.positive_cross_score == pytest.approx(0.7)


# --- the corpus index ----------------------------------------------------------------------------------------


def test_copies_match_title_and_text_or_text_alone_after_normalising():
    corpus = {
        "a": Document("a", "Title A", "Shared body text."),
        "b": Document("b", "Title B", "shared   BODY text."),
        "c": Document("c", "", "Title A\nShared body text."),
        "d": Document("d", "", "Something else."),
    }
    index = CorpusIndex(corpus)
    assert index.copies_among(range(4), (), {0}) == {0, 1, 2}
    assert index.copies_among([1, 3], (), {0}) == {1}  # only candidates are looked at
    assert index.copies_among(range(4), ["something ELSE."]) == {3}
    assert index.rows_of(["a", "", "missing"]) == {0}


# --- mine_hard_negatives -------------------------------------------------------------------------------------


def test_pooled_positives_labels_and_copies_are_never_negatives():
    corpus = corpus_of(["alpha", "beta", "gamma", "alpha", "delta", "eps", "zeta", "general text"])
    index = CorpusIndex(corpus)
    pairs = [pair("A", "beta", "d1"), pair("A", "gamma", "d2"), pair("B", "general text", "", "general")]
    windows = {"A": window([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]), "B": window([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])}
    labelled = {"a": {"d0"}}  # qrels call d0 relevant to A though no pair uses it; d3 is a copy of d0
    result = mine_hard_negatives(pairs, windows, [0.95, 0.95, 0.95], index, labelled, 8, "top", None, None, seed=0)
    a1, a2, b = result.selections
    assert a1.chosen_rows == a2.chosen_rows == [4, 5, 6, 7]
    assert [REASONS[r] for r in a1.reasons[:4]] == ["labelled_positive", "labelled_positive", "labelled_positive", "copy_of_positive"]
    assert 7 not in b.chosen_rows  # the general pair's positive text is in the corpus as d7
    assert b.chosen_rows == [0, 1, 2, 3, 4, 5, 6]
    assert drop_counts(result.selections)["labelled_positive"] == 6
    assert drop_counts(result.selections)["copy_of_positive"] == 3


def test_audit_measures_labelled_positives_among_negatives_before_and_after_filters():
    # Query "q" has labelled positives d0 (its pair's own) and d1 (which the miner is not told about in the audit).
    corpus = corpus_of(["own", "other relevant", "n2", "n3", "n4"])
    index = CorpusIndex(corpus)
    pairs = [pair("q", "own", "d0")]
    # Window order: d1 (0.85, close to the positive's 0.86), then d2, d3, d4.
    windows = {"q": window([0.85, 0.5, 0.4, 0.3], rows=[1, 2, 3, 4])}
    result = mine_hard_negatives(pairs, windows, [0.86], index, {"q": {"d0", "d1"}}, 2, "top", None, 0.05, seed=0)
    report = result.audit.report()
    assert report["audited_pairs"] == 1 and report["audited_pairs_with_other_labelled_positives"] == 1
    # Without the score filters the miner takes d1 and d2: one of two negatives is labelled relevant.
    assert report["before_filters"] == {"negatives": 2, "labelled_relevant": 1, "rate": 0.5}
    # The relative margin (bound 0.817) drops d1: none of d2, d3 is relevant.
    assert report["after_filters"] == {"negatives": 2, "labelled_relevant": 0, "rate": 0.0}
    assert report["output"] == {"negatives": 2, "labelled_relevant": 0, "rate": 0.0}
    assert report["window_labelled_relevant"] == 1 and report["dense_filters_catch_rate"] == 1.0
    assert report["dense_filters_drop_rate_others"] == 0.0
    assert result.selections[0].chosen_rows == [2, 3]


def test_audit_skips_unlabelled_anchors_and_counts_nothing_without_labels():
    corpus = corpus_of(["a", "b", "c"])
    result = mine_hard_negatives([pair("t", "a", "d0", "title")], {"t": window([0.5, 0.4], rows=[1, 2])}, [0.9],
                                 CorpusIndex(corpus), {}, 1, "top", None, None, seed=0)
    report = result.audit.report()
    assert report["audited_pairs"] == 0 and report["before_filters"]["rate"] == 0.0
    assert result.selections[0].chosen_rows == [1]


def test_audit_uses_the_cross_encoder_after_the_filters():
    corpus = corpus_of(["own", "other relevant", "n2"])
    scorer = FakeScorer({"own": 0.9, "other relevant": 0.89, "n2": 0.1})
    result = mine_hard_negatives([pair("q", "own", "d0")], {"q": window([0.5, 0.4], rows=[1, 2])}, [0.9], CorpusIndex(corpus),
                                 {"q": {"d0", "d1"}}, 1, "top", None, 0.05, seed=0,
                                 judge=cross_encoder_judge(scorer, [d.full_text for d in corpus.values()], 0.05))
    report = result.audit.report()
    assert report["before_filters"]["labelled_relevant"] == 1  # the dense filters let d1 through ...
    assert report["after_filters"]["labelled_relevant"] == 0  # ... the cross-encoder does not
    assert result.selections[0].reasons.tolist() == [LABELLED_POSITIVE, KEPT]


def test_drop_counts_cover_every_reason():
    assert drop_counts([]) == {name: 0 for name in REASONS[1:]}
    selection = new_selection(pair("q", "p", ""), window([0.1, 0.2, 0.3]), 0.5, "top", 0)
    selection.reasons[:] = [CROSS_ENCODER, MAX_SCORE, KEPT]
    assert drop_counts([selection]) == {"labelled_positive": 0, "copy_of_positive": 0, "max_score": 1,
                                        "relative_margin": 0, "cross_encoder": 1}
