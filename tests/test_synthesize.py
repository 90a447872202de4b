"""Pair synthesis: quality filter, per-source sampling, and deterministic sorted output."""

from __future__ import annotations

from collections import Counter

from stages.corpus_structure import Pair
from stages.data_io import Document
from stages.params import SynthesizeParams
from stages.synthesize import labelled_pairs, normalise, quality_filter, sample_per_source, synthesize_pairs

LONG = "This positive passage is comfortably longer than the fifty character minimum."


def settings(**overrides) -> SynthesizeParams:
    return SynthesizeParams(**overrides)


def test_normalise():
    assert normalise("  Parse\tJSON \n Text ") == "parse json text"


def test_quality_filter_drops_short_anchor_and_positive():
    pairs = [
        Pair("abc", LONG, "d1", "title"),  # anchor 3 chars < 5
        Pair("  abcd  ", LONG, "d1", "title"),  # 4 chars after strip
        Pair("good anchor", "too short", "d2", "title"),
        Pair("good anchor", LONG, "d3", "title"),
    ]
    kept, dropped = quality_filter(pairs, settings(min_anchor_chars=5, min_positive_chars=50), set())
    assert kept == [Pair("good anchor", LONG, "d3", "title")]
    assert dropped == Counter({"short_anchor": 2, "short_positive": 1})


def test_quality_filter_min_lengths_are_inclusive():
    kept, dropped = quality_filter([Pair("abcde", "x" * 10, "d", "title")], settings(min_anchor_chars=5, min_positive_chars=10), set())
    assert len(kept) == 1 and not dropped


def test_quality_filter_drops_duplicates_after_normalisation():
    pairs = [
        Pair("Parse JSON", LONG, "d1", "labelled"),
        Pair("  parse   json ", LONG + "  ", "d1", "title"),  # same anchor/positive once normalised
        Pair("Parse JSON", LONG, "d2", "labelled"),  # other document: kept
        Pair("Parse JSON", LONG + " More.", "d1", "section"),  # other positive text: kept
    ]
    kept, dropped = quality_filter(pairs, settings(), set())
    assert [(p.positive_id, p.source) for p in kept] == [("d1", "labelled"), ("d2", "labelled"), ("d1", "section")]
    assert dropped == Counter({"duplicate": 1})


def test_quality_filter_drops_held_out_queries():
    held_out = {normalise("Parse JSON text"), normalise("list files")}
    pairs = [
        Pair("  PARSE   json\ntext ", LONG, "d1", "labelled"),
        Pair("list files in a folder", LONG, "d2", "labelled"),  # not equal, only a prefix: kept
    ]
    kept, dropped = quality_filter(pairs, settings(), held_out)
    assert [p.anchor for p in kept] == ["list files in a folder"]
    assert dropped == Counter({"held_out_query": 1})


def test_quality_filter_cleans_kept_pairs():
    kept, _ = quality_filter([Pair("  many \n  spaces  here ", "  " + LONG + "\n", "d1", "title")], settings(), set())
    assert kept == [Pair("many spaces here", LONG, "d1", "title")]


def many_pairs() -> list[Pair]:
    return [Pair(f"anchor {source} {i}", LONG, f"d{i}", source) for source in ("title", "section", "labelled") for i in range(10)] + [
        Pair("anchor first", LONG, "d0", "first_sentence")
    ]


def test_sample_per_source_zero_keeps_all():
    pairs = many_pairs()
    assert sample_per_source(pairs, 0, seed=1) == pairs


def test_sample_per_source_bounded_and_seeded():
    pairs = many_pairs()
    first = sample_per_source(pairs, 3, seed=1)
    again = sample_per_source(pairs, 3, seed=1)
    other = sample_per_source(pairs, 3, seed=2)
    assert first == again
    counts = Counter(p.source for p in first)
    assert counts == Counter({"title": 3, "section": 3, "labelled": 3, "first_sentence": 1})
    assert set(first) <= set(pairs)
    assert len(set(first)) == len(first)
    assert set(first) != set(other)


def labelled_corpus() -> dict[str, Document]:
    return {
        "d1": Document("d1", "json.loads", "Deserialize a JSON document to a Python object, parsing numbers and strings."),
        "d2": Document("d2", "", "Return the square root of x. The argument must be a non-negative number, complex needs cmath."),
        "d3": Document("d3", "Guide", "# Install\nRun pip install guide to get the package with all of its extras.\n# Tiny\nshort"),
    }


def test_labelled_pairs_use_full_text_and_skip_non_relevant():
    corpus = labelled_corpus()
    pairs = labelled_pairs({"q1": "parse json", "q2": "sqrt"}, {"q2": {"d2": 1}, "q1": {"d1": 2, "d2": 0}}, corpus)
    assert pairs == [
        Pair("parse json", corpus["d1"].full_text, "d1", "labelled"),
        Pair("sqrt", corpus["d2"].text, "d2", "labelled"),
    ]


def test_synthesize_pairs_sorted_deterministic_and_reported():
    corpus = labelled_corpus()
    train = ({"q1": "parse a json document", "q2": "square root"}, {"q1": {"d1": 1}, "q2": {"d2": 1}})
    held_out = {normalise("square root")}
    pairs, report = synthesize_pairs(corpus, train, held_out, settings(), seed=0)
    again, again_report = synthesize_pairs(corpus, train, held_out, settings(), seed=0)
    assert pairs == again and report == again_report
    keys = [(p.source, p.anchor, p.positive_id, p.positive) for p in pairs]
    assert keys == sorted(keys)
    assert {p.source for p in pairs} == {"labelled", "title", "section", "first_sentence"}
    assert "square root" not in {p.anchor for p in pairs}
    assert ("labelled", "parse a json document") in {(p.source, p.anchor) for p in pairs}
    assert report["candidates"] == {"first_sentence": 1, "labelled": 2, "section": 2, "title": 2}
    assert report["dropped"] == {"held_out_query": 1, "short_positive": 1}
    assert report["kept"] == dict(sorted(Counter(p.source for p in pairs).items()))
    assert report["total_pairs"] == len(pairs) == 5


def test_synthesize_pairs_order_independent_of_corpus_order():
    corpus = labelled_corpus()
    reversed_corpus = dict(reversed(list(corpus.items())))
    empty = ({}, {})
    first, _ = synthesize_pairs(corpus, empty, set(), settings(), seed=3)
    second, _ = synthesize_pairs(reversed_corpus, empty, set(), settings(), seed=3)
    assert first == second


def test_synthesize_pairs_sources_can_be_disabled():
    corpus = labelled_corpus()
    only_titles = settings(labelled=False, sections=False, first_sentence=False)
    pairs, report = synthesize_pairs(corpus, ({"q1": "parse json"}, {"q1": {"d1": 1}}), set(), only_titles, seed=0)
    assert {p.source for p in pairs} == {"title"}
    assert report["candidates"] == {"title": 2}


def test_synthesize_pairs_max_per_source():
    corpus = {f"d{i}": Document(f"d{i}", f"Title number {i}", LONG) for i in range(8)}
    capped = settings(labelled=False, max_structure_pairs_per_source=3)
    pairs, report = synthesize_pairs(corpus, ({}, {}), set(), capped, seed=0)
    assert report["kept"] == {"title": 3}
    assert len(pairs) == 3
    assert pairs == sorted(pairs, key=lambda p: (p.source, p.anchor, p.positive_id, p.positive))
    assert pairs == synthesize_pairs(corpus, ({}, {}), set(), capped, seed=0)[0]


def test_labelled_pairs_are_never_capped():
    corpus = {f"d{i}": Document(f"d{i}", f"Title number {i}", LONG) for i in range(8)}
    queries = {f"q{i}": f"query number {i}" for i in range(8)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(8)}
    capped = settings(max_structure_pairs_per_source=3, sections=False, first_sentence=False)
    _, report = synthesize_pairs(corpus, (queries, qrels), set(), capped, seed=0)
    assert report["kept"] == {"labelled": 8, "title": 3}
