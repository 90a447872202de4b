"""Quality control of candidate training pairs: each filter keeps some pairs and drops the others with a reason.

The filters, in the order `synthesize` applies them (the first one a pair fails is its drop reason):

- ``leakage``: the query equals a dev or test query, exactly or after normalisation;
- ``short_anchor`` / ``short_positive``: too little text to learn from;
- ``copied_span``: the query copies long spans of its passage (word n-gram overlap above a threshold);
- ``duplicate``: the same normalised query with the same passage is already kept (sources are ranked, people's
  queries first);
- ``round_trip``: the base model does not rank the passage within the top k for the query;
- ``capped``: over a per-source limit (a seeded sample is kept).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from embedft.config import SOURCE_NAMES
from embedft.core import Pair, clean_query, normalise_query

DROP_REASONS = ("leakage", "short_anchor", "short_positive", "copied_span", "duplicate", "round_trip", "capped")
"""Why a filter dropped a pair, in the order the filters run (see the module docstring)."""
WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Dropped:
    """A pair a filter removed, the filter's name, and what it found (for the review file)."""

    pair: Pair
    reason: str
    detail: str


FilterResult = tuple[list[Pair], list[Dropped]]


def held_out_index(splits: dict[str, dict[str, str]]) -> dict[str, tuple[str, str, str]]:
    """Normalised query text -> (split, query id, original text), over the dev and test queries given."""
    index: dict[str, tuple[str, str, str]] = {}
    for split in sorted(splits):
        for query_id in sorted(splits[split]):
            index.setdefault(normalise_query(splits[split][query_id]), (split, query_id, splits[split][query_id]))
    return index


def leakage_filter(pairs: list[Pair], held_out: dict[str, tuple[str, str, str]]) -> FilterResult:
    """Drop every pair whose query matches a dev or test query, exactly or after normalisation.

    Args:
        pairs: candidates.
        held_out: from :func:`held_out_index`.
    """
    kept, dropped = [], []
    for pair in pairs:
        match = held_out.get(normalise_query(pair.anchor))
        if match is None:
            kept.append(pair)
        else:
            how = "exactly" if clean_query(pair.anchor) == clean_query(match[2]) else "after normalisation"
            dropped.append(Dropped(pair, "leakage", f"matches {match[0]} query '{match[1]}' {how}"))
    return kept, dropped


def length_filter(pairs: list[Pair], min_anchor_chars: int, min_positive_chars: int) -> FilterResult:
    """Drop pairs whose query or passage (whitespace trimmed) is shorter than the minimum."""
    kept, dropped = [], []
    for pair in pairs:
        anchor, positive = len(clean_query(pair.anchor)), len(pair.positive.strip())
        if anchor < min_anchor_chars:
            dropped.append(Dropped(pair, "short_anchor", f"query has {anchor} characters, fewer than {min_anchor_chars}"))
        elif positive < min_positive_chars:
            dropped.append(Dropped(pair, "short_positive", f"passage has {positive} characters, fewer than {min_positive_chars}"))
        else:
            kept.append(pair)
    return kept, dropped


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copied_share(query: str, passage: str, n: int) -> float | None:
    """Share of the query's word n-grams (lower-cased) that also occur in the passage; None when the query
    has fewer than ``n`` words."""
    query_grams = ngrams(WORDS.findall(query.lower()), n)
    if not query_grams:
        return None
    return len(query_grams & ngrams(WORDS.findall(passage.lower()), n)) / len(query_grams)


def copy_filter(pairs: list[Pair], n: int, max_overlap: float, sources: Iterable[str]) -> FilterResult:
    """Drop pairs of the given sources whose query copies long spans of its passage.

    Args:
        pairs: candidates.
        n: n-gram length in words.
        max_overlap: a query with a larger share of its n-grams found in the passage is dropped.
        sources: the sources this filter applies to; others pass untouched.
    """
    applies = set(sources)
    kept, dropped = [], []
    for pair in pairs:
        share = copied_share(pair.anchor, pair.positive, n) if pair.source in applies else None
        if share is not None and share > max_overlap:
            dropped.append(Dropped(pair, "copied_span", f"{share:.0%} of the query's {n}-word spans are in the passage"))
        else:
            kept.append(pair)
    return kept, dropped


def by_trust(pairs: list[Pair]) -> list[Pair]:
    """Pairs ordered by source trust, then text, so the same candidates always keep the same duplicate."""
    rank = {source: i for i, source in enumerate(SOURCE_NAMES)}
    return sorted(pairs, key=lambda p: (rank.get(p.source, len(SOURCE_NAMES)), p.source, p.anchor, p.positive_id, p.positive))


def deduplicate(pairs: list[Pair]) -> FilterResult:
    """Keep one pair per (normalised query, passage), from the most trusted source; clean the kept queries.

    The passage is its corpus id, or its normalised text for pairs outside the corpus (general-domain ones).
    """
    seen: dict[tuple[str, str], Pair] = {}
    kept, dropped = [], []
    for pair in by_trust(pairs):
        key = (normalise_query(pair.anchor), pair.positive_id or "text:" + normalise_query(pair.positive))
        if key in seen:
            dropped.append(Dropped(pair, "duplicate", f"same query and passage as a kept {seen[key].source} pair"))
            continue
        seen[key] = pair
        kept.append(Pair(clean_query(pair.anchor), pair.positive.strip(), pair.positive_id, pair.source))
    return kept, dropped


QueryEncoder = Callable[[list[str]], np.ndarray]
"""Maps query texts to unit-norm vectors (the base model with its query prompt)."""


def round_trip_filter(
    pairs: list[Pair],
    sources: Iterable[str],
    k: int,
    encode_queries: QueryEncoder,
    corpus_vectors: np.ndarray,
    doc_ids: list[str],
    chunk_size: int = 50_000,
) -> FilterResult:
    """Keep a pair of the given sources only if its passage ranks within the top ``k`` for its query.

    Only the queries are encoded; the corpus vectors are the stored base-model embeddings.

    Args:
        pairs: candidates; pairs of other sources pass untouched.
        sources: the sources this filter applies to.
        k: rank cut-off.
        encode_queries: the base model's query encoder.
        corpus_vectors: unit-norm corpus embeddings, row i for ``doc_ids[i]``.
        doc_ids: corpus ids in row order.
        chunk_size: corpus rows scored at once.
    """
    applies = set(sources)
    checked = [p for p in pairs if p.source in applies]
    if not checked:
        return pairs, []
    # Imported here: retrieval loads torch (seconds), and most runs have nothing to check.
    from embedft.retrieval import exact_search

    anchors = sorted({p.anchor for p in checked})
    indices, _ = exact_search(encode_queries(anchors), corpus_vectors, k, chunk_size)
    top = {anchor: {doc_ids[i] for i in row} for anchor, row in zip(anchors, indices.tolist())}
    kept, dropped = [], []
    for pair in pairs:
        if pair.source in applies and pair.positive_id not in top[pair.anchor]:
            dropped.append(Dropped(pair, "round_trip", f"the base model does not rank the passage in its top {k}"))
        else:
            kept.append(pair)
    return kept, dropped


def cap_per_source(pairs: list[Pair], limit: int, seed: int, capped_sources: Iterable[str]) -> FilterResult:
    """Keep a seeded sample of at most ``limit`` pairs of each capped source; 0 keeps everything."""
    applies = set(capped_sources)
    if limit == 0:
        return pairs, []
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.source, []).append(pair)
    rng = random.Random(seed)
    kept, dropped = [], []
    for source in sorted(groups):
        group = sorted(groups[source], key=lambda p: (p.anchor, p.positive_id, p.positive))
        if source not in applies or len(group) <= limit:
            kept += group
            continue
        chosen = set(rng.sample(range(len(group)), limit))
        kept += [p for i, p in enumerate(group) if i in chosen]
        dropped += [Dropped(p, "capped", f"over the limit of {limit} {source} pairs") for i, p in enumerate(group) if i not in chosen]
    return kept, dropped


def sample_general(pairs: list[Pair], domain_pairs: int, fraction: float, seed: int) -> FilterResult:
    """Draw general-domain pairs so they are ``fraction`` of the final pairs (all of them when there are too few).

    Args:
        pairs: filtered general-domain candidates.
        domain_pairs: how many in-domain pairs are kept.
        fraction: the general pairs' share of the final set, in [0, 1).
        seed: seeds the draw.
    """
    wanted = round(fraction / (1 - fraction) * domain_pairs) if fraction > 0 else 0
    ordered = sorted(pairs, key=lambda p: (p.anchor, p.positive))
    if wanted >= len(ordered):
        return ordered, []
    chosen = set(random.Random(seed).sample(range(len(ordered)), wanted))
    kept = [p for i, p in enumerate(ordered) if i in chosen]
    reason = f"not drawn: {wanted} general pairs make {fraction:.0%} of the set"
    dropped = [Dropped(p, "capped", reason) for i, p in enumerate(ordered) if i not in chosen]
    return kept, dropped


def source_report(candidates: list[Pair], kept: list[Pair], dropped: list[Dropped]) -> dict[str, dict]:
    """Per source: pairs in, pairs kept, and the drop count of every filter (zeros included, so the metrics
    file always has the same keys)."""
    by_reason = Counter((d.pair.source, d.reason) for d in dropped)
    candidates_by_source, kept_by_source = Counter(p.source for p in candidates), Counter(p.source for p in kept)
    return {
        source: {
            "in": candidates_by_source[source],
            "kept": kept_by_source[source],
            "dropped": {reason: by_reason[(source, reason)] for reason in DROP_REASONS},
        }
        for source in SOURCE_NAMES
    }
