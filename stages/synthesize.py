"""Stage `synthesize`: build (anchor, positive) training pairs from every configured source, with quality control.

Sources (each switched in params.yaml, all combinable, each pair tagged with its source): the train split's
labelled queries; the corpus structure (title -> text, heading -> section, first sentence -> rest); search
logs; queries written by an LLM behind an OpenAI-compatible endpoint; queries sampled from a local seq2seq
model; and, optionally, general-domain pairs mixed in to limit forgetting (embedft/pairs/synthesis.py).

Quality control (embedft/pairs/filters.py): leakage guard against dev/test queries, minimum lengths, n-gram copy
filter, normalise-and-deduplicate, the base model's round-trip check (reusing data/embeddings/base), a
per-source cap. Writes data/pairs/pairs.jsonl, the counts per source and filter (reports/synthesize.json), the
review file reviews/synthesize.md, and this run's LLM traffic (logs/synthesize.json: cache hits, requests,
retries, tokens paid now), which differs between identical runs. The number of pairs a reviewer compares is
`train`'s metric.
"""

from __future__ import annotations

from collections import Counter

from embedft.config import load_machine, load_params
from embedft.core import PipelineError, read_corpus, read_split, run_stage, write_json_atomic, write_pairs, write_text_atomic
from embedft.core.artifacts import CORPUS_FILE, PAIRS_DIR, SPLIT_DIR, SYNTHESIZE_LOG, SYNTHESIZE_REPORT, SYNTHESIZE_REVIEW
from embedft.pairs import (
    DROP_REASONS,
    base_model_round_trip,
    gather_candidates,
    held_out_index,
    review_markdown,
    split_run_counts,
    synthesize_pairs,
)


def main() -> None:
    params, machine = load_params(), load_machine()
    settings = params.synthesize
    corpus = read_corpus(CORPUS_FILE)
    train = read_split(SPLIT_DIR / "train")
    held_out = held_out_index({name: read_split(SPLIT_DIR / name)[0] for name in ("dev", "test")})
    candidates, general, source_counts = gather_candidates(params, machine, corpus, train)
    round_trip = base_model_round_trip(params.base, machine, settings, corpus)
    pairs, dropped, per_source = synthesize_pairs(candidates, general, held_out, settings, params.base.seed, round_trip)
    if not pairs:
        raise PipelineError("synthesize: no training pairs: enable a source in params.yaml `synthesize` or add labelled queries")
    reasons = Counter(d.reason for d in dropped)
    source_counts, run = split_run_counts(source_counts)
    report = {
        "total_pairs": len(pairs),
        "sources": per_source,
        "dropped": {reason: reasons[reason] for reason in DROP_REASONS},
        "leakage_removed": reasons["leakage"],
        **source_counts,
    }
    write_pairs(PAIRS_DIR, pairs)
    write_text_atomic(SYNTHESIZE_REVIEW, review_markdown(pairs, dropped, settings.review.kept, settings.review.dropped,
                                                         params.base.seed))
    write_json_atomic(SYNTHESIZE_REPORT, report)
    write_json_atomic(SYNTHESIZE_LOG, run)
    kept = ", ".join(f"{s} {c['kept']}/{c['in']}" for s, c in per_source.items() if c["in"])
    llm = ""
    if settings.llm.enabled:
        unusable = source_counts["llm"]["unusable_replies"]
        llm = (f"; LLM replies cached unusable: {unusable}"
               + (" (synthesize.llm.retry_unusable: true requests them again)" if unusable else ""))
    print(f"synthesize: {len(pairs)} pairs (kept/in: {kept}); dropped {dict(sorted((r, n) for r, n in reasons.items()))}{llm}; "
          f"review sample in {SYNTHESIZE_REVIEW}")


if __name__ == "__main__":
    run_stage(main)
