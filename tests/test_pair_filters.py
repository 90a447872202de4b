"""Each quality filter on crafted pairs: it keeps and drops exactly what it should, with the right reason."""

from __future__ import annotations

import numpy as np
import pytest

from embedft.config.choices import SOURCE_NAMES
from embedft.core.rows import Pair
from embedft.core.text import clean_query, normalise_query
from embedft.pairs.filters import (
    DROP_REASONS,
    Dropped,
    cap_per_source,
    copied_share,
    copy_filter,
    deduplicate,
    held_out_index,
    leakage_filter,
    length_filter,
    round_trip_filter,
    sample_general,
    source_report,
)

LONG = "This positive passage is comfortably longer than the fifty character minimum."


def reasons(dropped: list[Dropped]) -> list[tuple[str, str]]:
    return [(d.pair.anchor, d.reason) for d in dropped]


def test_normalise_and_clean_query():
    assert normalise_query("  What IS\tJSON?  ") == "what is json"
    assert normalise_query('"Parse JSON text."') == "parse json text"
    assert normalise_query("Straße ﬁle") == "strasse file"  # case-folded, NFKC (ligature)
    assert normalise_query("C++ (language)") == "c++ (language"  # inner punctuation kept, edges trimmed
    assert clean_query("  many \n  spaces  ") == "many spaces"


def test_leakage_filter_exact_and_normalised():
    held_out = held_out_index({"dev": {"q1": "Parse JSON text"}, "test": {"q2": "list files in a folder?"}})
    pairs = [
        Pair("Parse JSON text", LONG, "d1", "labelled"),       # exact
        Pair("  parse   json TEXT. ", LONG, "d1", "llm"),       # after normalisation
        Pair("List files in a folder", LONG, "d2", "search_log"),
        Pair("parse json text quickly", LONG, "d1", "llm"),     # longer: not a match
        Pair("list files", LONG, "d2", "title"),                # prefix only: not a match
    ]
    kept, dropped = leakage_filter(pairs, held_out)
    assert [p.anchor for p in kept] == ["parse json text quickly", "list files"]
    assert reasons(dropped) == [("Parse JSON text", "leakage"), ("  parse   json TEXT. ", "leakage"), ("List files in a folder", "leakage")]
    assert dropped[0].detail == "matches dev query 'q1' exactly"
    assert dropped[1].detail == "matches dev query 'q1' after normalisation"
    assert dropped[2].detail == "matches test query 'q2' after normalisation"


def test_length_filter_is_inclusive_and_trims():
    pairs = [
        Pair("abc", LONG, "d1", "title"),
        Pair("  abcd  ", LONG, "d1", "title"),
        Pair("abcde", LONG, "d1", "title"),
        Pair("good anchor", "x" * 49, "d2", "title"),
        Pair("good anchor", "x" * 50, "d3", "title"),
    ]
    kept, dropped = length_filter(pairs, 5, 50)
    assert [(p.anchor, p.positive_id) for p in kept] == [("abcde", "d1"), ("good anchor", "d3")]
    assert reasons(dropped) == [("abc", "short_anchor"), ("  abcd  ", "short_anchor"), ("good anchor", "short_positive")]


def test_copied_share():
    passage = "Return the square root of x. The argument must be a non-negative number."
    assert copied_share("return the square root of x", passage, 4) == 1.0
    assert copied_share("square root of a negative number", passage, 4) == 0.0
    assert copied_share("how to get the square root of x in python", passage, 4) == pytest.approx(2 / 7)
    assert copied_share("square root", passage, 4) is None  # shorter than n: never judged


def test_copy_filter_drops_copies_of_listed_sources_only():
    passage = "Return the square root of x. The argument must be a non-negative number."
    pairs = [
        Pair("Return the square root of x.", passage, "d", "llm"),                         # 3/3 copied
        Pair("the argument must be a non-negative number", passage, "d", "generated"),     # 5/5 copied
        Pair("how do I compute a square root of x", passage, "d", "llm"),                  # 1/6 copied
        Pair("return the square root of x", passage, "d", "labelled"),                     # source not listed
        Pair("square root", passage, "d", "llm"),                                          # too short to judge
        Pair("get the square root of x fast", passage, "d", "llm"),                        # 2/4 = 0.5: not above
    ]
    kept, dropped = copy_filter(pairs, 4, 0.5, ["llm", "generated"])
    assert [p.anchor for p in kept] == ["how do I compute a square root of x", "return the square root of x", "square root",
                                        "get the square root of x fast"]
    assert reasons(dropped) == [("Return the square root of x.", "copied_span"),
                                ("the argument must be a non-negative number", "copied_span")]
    assert dropped[0].detail == "100% of the query's 4-word spans are in the passage"


def test_deduplicate_keeps_the_most_trusted_source_and_cleans():
    pairs = [
        Pair("Parse JSON", LONG, "d1", "llm"),
        Pair("  parse   json? ", LONG, "d1", "labelled"),       # same normalised query, same document: labelled wins
        Pair("Parse JSON", LONG, "d2", "title"),                # other document: kept
        Pair("parse json", LONG, "d1", "generated"),
        Pair("general query", "A general passage.", "", "general"),
        Pair("General query", " A general passage. ", "", "general"),   # same text outside the corpus
        Pair("general query", "Another general passage.", "", "general"),
    ]
    kept, dropped = deduplicate(pairs)
    assert sorted((p.source, p.anchor, p.positive_id) for p in kept) == [
        ("general", "General query", ""), ("general", "general query", ""), ("labelled", "parse json?", "d1"),
        ("title", "Parse JSON", "d2"),
    ]
    assert sorted((d.pair.source, d.reason) for d in dropped) == [("general", "duplicate"), ("generated", "duplicate"),
                                                                   ("llm", "duplicate")]
    assert {d.detail for d in dropped if d.pair.source == "llm"} == {"same query and passage as a kept labelled pair"}
    assert deduplicate(list(reversed(pairs)))[0] == kept  # the order of the candidates does not matter


def one_hot(size: int, index: int) -> np.ndarray:
    vector = np.zeros(size, dtype=np.float32)
    vector[index] = 1.0
    return vector


def test_round_trip_filter_with_crafted_vectors():
    doc_ids = ["a", "b", "c", "d"]
    corpus = np.eye(4, dtype=np.float32)
    # Each query's vector: mostly toward one document, a little toward the next.
    directions = {"about a": (0, 1), "about b": (1, 2), "about c": (2, 3)}
    encoded: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        encoded.append(texts)
        rows = [0.8 * one_hot(4, directions[t][0]) + 0.6 * one_hot(4, directions[t][1]) for t in texts]
        return np.stack(rows)

    pairs = [
        Pair("about a", LONG, "a", "llm"),        # rank 1: kept
        Pair("about a", LONG, "b", "llm"),        # rank 2: kept with k = 2
        Pair("about b", LONG, "d", "generated"),  # not ranked in top 2: dropped
        Pair("about c", LONG, "a", "labelled"),   # source not checked: kept
    ]
    kept, dropped = round_trip_filter(pairs, ["llm", "generated"], 2, encode, corpus, doc_ids)
    assert kept == [pairs[0], pairs[1], pairs[3]]
    assert [(d.pair, d.reason) for d in dropped] == [(pairs[2], "round_trip")]
    assert dropped[0].detail == "the base model does not rank the passage in its top 2"
    assert encoded == [["about a", "about b"]]  # each distinct checked query encoded once; the corpus never
    kept, dropped = round_trip_filter(pairs, ["llm"], 1, encode, corpus, doc_ids)
    assert [(d.pair.positive_id, d.reason) for d in dropped] == [("b", "round_trip")]


def test_round_trip_filter_does_nothing_without_checked_pairs():
    def fail(texts):
        raise AssertionError("nothing to encode")

    pairs = [Pair("q", LONG, "a", "title")]
    assert round_trip_filter(pairs, ["llm"], 1, fail, np.eye(1, dtype=np.float32), ["a"]) == (pairs, [])


def test_cap_per_source_is_seeded_and_spares_uncapped_sources():
    pairs = [Pair(f"{source} anchor {i}", LONG, f"d{i}", source) for source in ("title", "labelled") for i in range(10)]
    kept, dropped = cap_per_source(pairs, 3, seed=1, capped_sources=["title"])
    assert sum(p.source == "title" for p in kept) == 3 and sum(p.source == "labelled" for p in kept) == 10
    assert len(dropped) == 7 and {d.reason for d in dropped} == {"capped"}
    assert set(kept) | {d.pair for d in dropped} == set(pairs)
    assert cap_per_source(list(reversed(pairs)), 3, seed=1, capped_sources=["title"])[0] == kept
    assert cap_per_source(pairs, 3, seed=2, capped_sources=["title"])[0] != kept
    assert cap_per_source(pairs, 0, seed=1, capped_sources=["title"]) == (pairs, [])


def test_sample_general_is_the_requested_share():
    general = [Pair(f"general {i}", LONG, "", "general") for i in range(100)]
    kept, dropped = sample_general(general, domain_pairs=90, fraction=0.1, seed=0)
    assert len(kept) == 10 and len(dropped) == 90  # 10 of 100 final pairs
    assert {d.reason for d in dropped} == {"capped"}
    assert sample_general(general, 90, 0.1, seed=0)[0] == kept
    few, none_dropped = sample_general(general[:5], domain_pairs=90, fraction=0.5, seed=0)
    assert len(few) == 5 and not none_dropped  # fewer than wanted: all of them
    assert sample_general(general, 90, 0.0, seed=0)[0] == []


def test_source_report_has_every_source_and_reason():
    candidates = [Pair("a", LONG, "d", "llm"), Pair("b", LONG, "d", "llm"), Pair("c", LONG, "d", "title")]
    report = source_report(candidates, [candidates[0], candidates[2]], [Dropped(candidates[1], "round_trip", "")])
    assert list(report) == list(SOURCE_NAMES)
    assert report["llm"] == {"in": 2, "kept": 1, "dropped": {**dict.fromkeys(DROP_REASONS, 0), "round_trip": 1}}
    assert report["general"] == {"in": 0, "kept": 0, "dropped": dict.fromkeys(DROP_REASONS, 0)}
