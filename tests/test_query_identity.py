"""One notion of "the same query" everywhere: synthesize's leakage guard, its duplicate filter and evaluate's
leakage count all compare queries by `normalise_query`, so they agree on every variant."""

from __future__ import annotations

import numpy as np
import pytest

from embedft.core import Pair, normalise_query
from embedft.evaluation import count_leaks
from embedft.pairs.filters import deduplicate, held_out_index, leakage_filter

TEST_QUERY = "What is X?"
VARIANTS = ["What is X?", "what is x", "WHAT IS X.", "  What   is\tX ?", "what is x!", "\"What is X\"", "Ｗhat is X?"]
DIFFERENT = ["What is Y?", "What is X or Y?", "is X?"]


def leaked_by_synthesize(anchor: str) -> bool:
    kept, dropped = leakage_filter([Pair(anchor, "a passage", "d1", "llm")], held_out_index({"test": {"q1": TEST_QUERY}}))
    return bool(dropped)


def counted_by_evaluate(anchor: str) -> bool:
    # Orthogonal vectors: only the text comparison can count the query as leaked.
    counts, _ = count_leaks({"q1": TEST_QUERY}, [anchor], np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), similarity=0.95)
    return counts["normalised"] == 1


@pytest.mark.parametrize("anchor", VARIANTS + DIFFERENT)
def test_synthesize_and_evaluate_agree(anchor: str) -> None:
    expected = anchor in VARIANTS
    assert leaked_by_synthesize(anchor) is expected
    assert counted_by_evaluate(anchor) is expected
    assert (normalise_query(anchor) == normalise_query(TEST_QUERY)) is expected


def test_duplicates_are_the_same_variants() -> None:
    kept, dropped = deduplicate([Pair(anchor, "a passage", "d1", "llm") for anchor in VARIANTS])
    assert len(kept) == 1 and len(dropped) == len(VARIANTS) - 1
