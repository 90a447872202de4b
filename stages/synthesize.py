"""Stage `synthesize`: build (anchor, positive) training pairs from every configured source, with quality control.

Sources: the train split's labelled queries, and the corpus structure (titles, headed sections, first
sentences). Pairs whose anchor is a dev or test query are removed, so evaluation never sees its own queries
in training.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from stages.atomic import atomic_path, write_json_atomic, write_jsonl
from stages.corpus_structure import Pair, first_sentence_pairs, section_pairs, title_pairs
from stages.data_io import Document, Qrels, read_corpus, read_split
from stages.data_io import normalise_text as normalise
from stages.errors import PipelineError, run_stage
from stages.params import SynthesizeParams, load_params
from stages.paths import CORPUS_FILE, METRICS_DIR, PAIRS_DIR, SPLIT_DIR


def labelled_pairs(queries: dict[str, str], qrels: Qrels, corpus: dict[str, Document]) -> list[Pair]:
    """(query, relevant document) for each positive judgement of the train split."""
    return [
        Pair(queries[query_id], corpus[doc_id].full_text, doc_id, "labelled")
        for query_id in sorted(qrels)
        for doc_id in sorted(qrels[query_id])
        if qrels[query_id][doc_id] > 0
    ]


def quality_filter(pairs: list[Pair], settings: SynthesizeParams, held_out_queries: set[str]) -> tuple[list[Pair], Counter]:
    """Drop short, duplicate and held-out-query pairs.

    Args:
        pairs: candidate pairs from all sources.
        settings: minimum lengths.
        held_out_queries: normalised dev/test query texts; a pair with such an anchor would leak.

    Returns:
        the kept pairs and a count of drops by reason.
    """
    kept, dropped, seen = [], Counter(), set()
    for pair in pairs:
        anchor = normalise(pair.anchor)
        key = (anchor, pair.positive_id, normalise(pair.positive))
        if len(pair.anchor.strip()) < settings.min_anchor_chars:
            dropped["short_anchor"] += 1
        elif len(pair.positive.strip()) < settings.min_positive_chars:
            dropped["short_positive"] += 1
        elif anchor in held_out_queries:
            dropped["held_out_query"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(key)
            kept.append(Pair(re.sub(r"\s+", " ", pair.anchor).strip(), pair.positive.strip(), pair.positive_id, pair.source))
    return kept, dropped


def sample_per_source(pairs: list[Pair], limit: int, seed: int, uncapped: frozenset[str] = frozenset()) -> list[Pair]:
    """Keep at most ``limit`` pairs of each source (a seeded sample); 0 keeps everything.

    Args:
        pairs: the pairs, of any sources.
        limit: the most pairs kept per source.
        seed: seeds the sample.
        uncapped: sources kept whole whatever the limit.
    """
    if limit == 0:
        return pairs
    by_source: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_source.setdefault(pair.source, []).append(pair)
    rng = random.Random(seed)
    kept = []
    for source in sorted(by_source):
        group = by_source[source]
        kept += group if source in uncapped or len(group) <= limit else rng.sample(group, limit)
    return kept


def synthesize_pairs(
    corpus: dict[str, Document],
    train: tuple[dict[str, str], Qrels],
    held_out_queries: set[str],
    settings: SynthesizeParams,
    seed: int,
) -> tuple[list[Pair], dict]:
    """All pairs from the enabled sources after quality control, sorted, with counts for the metrics file."""
    candidates: list[Pair] = []
    if settings.labelled:
        candidates += labelled_pairs(*train, corpus)
    if settings.title_to_text:
        candidates += title_pairs(corpus)
    if settings.sections:
        candidates += section_pairs(corpus)
    if settings.first_sentence:
        candidates += first_sentence_pairs(corpus)
    kept, dropped = quality_filter(candidates, settings, held_out_queries)
    kept = sample_per_source(kept, settings.max_structure_pairs_per_source, seed, uncapped=frozenset({"labelled"}))
    kept = sorted(kept, key=lambda p: (p.source, p.anchor, p.positive_id, p.positive))
    report = {
        "candidates": dict(sorted(Counter(p.source for p in candidates).items())),
        "kept": dict(sorted(Counter(p.source for p in kept).items())),
        "dropped": dict(sorted(dropped.items())),
        "total_pairs": len(kept),
    }
    return kept, report


def main() -> None:
    params = load_params()
    corpus = read_corpus(CORPUS_FILE)
    train = read_split(SPLIT_DIR / "train")
    held_out = {normalise(text) for name in ("dev", "test") for text in read_split(SPLIT_DIR / name)[0].values()}
    pairs, report = synthesize_pairs(corpus, train, held_out, params.synthesize, params.base.seed)
    if not pairs:
        raise PipelineError("synthesize: no training pairs: enable a source in params.yaml `synthesize` or add labelled queries")
    with atomic_path(PAIRS_DIR, is_dir=True) as out:
        write_jsonl(out / "pairs.jsonl", [p.as_row() for p in pairs])
    write_json_atomic(METRICS_DIR / "synthesize.json", report)
    print(f"synthesize: {len(pairs)} pairs {report['kept']}; dropped {report['dropped']}")


if __name__ == "__main__":
    run_stage(main)
