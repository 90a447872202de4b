"""The review file: every decision in words with its bound, the seeded sample, safe Markdown."""

from __future__ import annotations

import numpy as np

from embedft.config.params import MineNegativesParams
from embedft.core.rows import Document, Pair
from embedft.mining.corpus_index import CorpusIndex
from embedft.mining.review import review_markdown, run_description, snippet
from embedft.mining.selection import (
    COPY_OF_POSITIVE,
    CROSS_ENCODER,
    KEPT,
    LABELLED_POSITIVE,
    MAX_SCORE,
    RELATIVE_MARGIN,
    FalseNegativeAudit,
    MiningResult,
    Window,
    new_selection,
)

SETTINGS = MineNegativesParams(range_min=2, range_max=9, num_negatives=1, max_score=0.9, relative_margin=0.05,
                               cross_encoder="tiny-ce", cross_encoder_margin=0.1, review_queries=2)


def one_query_result() -> tuple[list[Pair], MiningResult, CorpusIndex]:
    corpus = {f"d{i}": Document(f"d{i}", "", f"document {i} | with a pipe") for i in range(7)}
    pairs = [Pair("the query", "the positive", "d0", "labelled")]
    window = Window(np.arange(1, 7), np.arange(2, 8), np.array([0.95, 0.9, 0.85, 0.7, 0.6, 0.5], dtype=np.float32))
    selection = new_selection(pairs[0], window, 0.8, "top", 0)
    selection.reasons[:] = [LABELLED_POSITIVE, COPY_OF_POSITIVE, MAX_SCORE, RELATIVE_MARGIN, CROSS_ENCODER, KEPT]
    selection.cross_scores[4:] = [0.7, 0.2]
    selection.positive_cross_score = 0.6
    selection.chosen = [5]
    return pairs, MiningResult([selection], FalseNegativeAudit()), CorpusIndex(corpus)


def test_every_decision_is_spelt_out_with_its_bound():
    pairs, result, index = one_query_result()
    text = review_markdown(pairs, result, index, SETTINGS, seed=1, header=run_description(SETTINGS, "base-model", 9))
    assert "Retriever `dense`, dense model `base-model`, window ranks 3..9" in text
    assert "cross-encoder `tiny-ce` (margin `0.1`)" in text
    assert "Positive (labelled) `d0`: dense 0.8000, cross-encoder 0.6000" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "rank" not in line]
    assert [row.split(" | ")[3] for row in rows] == [
        "dropped: labelled positive",
        "dropped: copy of a positive",
        "dropped: dense > max_score 0.9",
        "dropped: dense > 0.7600 (relative margin)",
        "dropped: cross-encoder > 0.5400 (margin)",
        "**chosen**",
    ]
    assert rows[-1].startswith("| 8 | 0.5000 | 0.2000 | **chosen** | `d6` document 6 \\| with a pipe |")


def test_candidates_not_needed_are_counted_not_listed():
    pairs, result, index = one_query_result()
    result.selections[0].reasons[:] = KEPT
    result.selections[0].chosen = [0]
    text = review_markdown(pairs, result, index, SETTINGS, seed=1, header=[])
    assert text.count("**chosen**") == 1 and "5 more candidate(s) passed the filters but were not needed." in text


def test_the_sample_is_seeded_and_one_section_per_query():
    corpus = {f"d{i}": Document(f"d{i}", "", f"doc {i}") for i in range(3)}
    pairs = [Pair(f"query {i}", "p", "", "general") for i in range(6)]
    window = Window(np.array([1, 2]), np.array([0, 1]), np.array([0.3, 0.2], dtype=np.float32))
    result = MiningResult([new_selection(p, window, 0.9, "top", 0) for p in pairs], FalseNegativeAudit())
    first = review_markdown(pairs, result, CorpusIndex(corpus), SETTINGS, seed=3, header=[])
    assert first == review_markdown(pairs, result, CorpusIndex(corpus), SETTINGS, seed=3, header=[])
    assert first.count("\n### ") == 2 and "A seeded sample of 2 of 6 queries" in first
    samples = {review_markdown(pairs, result, CorpusIndex(corpus), SETTINGS, seed=s, header=[]) for s in range(6)}
    assert len(samples) > 1


def test_snippet_is_one_safe_line():
    assert snippet("a\nb | c", 100) == "a b \\| c"
    assert snippet("x" * 50, 10) == "x" * 9 + "…"
