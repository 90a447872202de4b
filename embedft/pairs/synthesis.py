"""Building the training pairs: every enabled source's candidates, then quality control in order.

Sources (each switched in params.yaml, all combinable, each pair tagged with its source): the train split's
labelled queries; the corpus structure (title -> text, heading -> section, first sentence -> rest); search
logs; queries written by an LLM behind an OpenAI-compatible endpoint; queries sampled from a local seq2seq
model; and, optionally, general-domain pairs mixed in to limit forgetting.

Quality control (:mod:`embedft.pairs.filters`): leakage guard against dev/test queries, minimum lengths, n-gram
copy filter, normalise-and-deduplicate, the base model's round-trip check (reusing data/embeddings/base), a
per-source cap.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

from embedft.config import STRUCTURE_SOURCE_NAMES, BaseParams, MachineSettings, Params, SynthesizeParams
from embedft.core import Document, Pair, PipelineError, Qrels, read_jsonl
from embedft.core.artifacts import BASE_EMBEDDINGS_DIR
from embedft.pairs.filters import (
    Dropped,
    FilterResult,
    cap_per_source,
    copy_filter,
    deduplicate,
    leakage_filter,
    length_filter,
    round_trip_filter,
    sample_general,
    source_report,
)
from embedft.pairs.llm_queries import RUN_COUNTS, UNUSABLE_COUNTS, LlmReport, api_key_from_env, llm_queries, reply_cache_path
from embedft.pairs.local_queries import generate_local_queries
from embedft.pairs.search_logs import SearchLogReport, describe_unknown, search_log_pairs
from embedft.pairs.structure import first_sentence_pairs, section_pairs, title_pairs

logger = logging.getLogger(__name__)

LOCAL_COUNT_KEYS = ("passages", "queries", "empty_or_repeated", "gpu")
LOCAL_RUN_COUNTS = ("gpu",)
"""Of the local generator's counts, those that describe the machine, not the result."""
RoundTrip = Callable[[list[Pair]], FilterResult]


def labelled_pairs(queries: dict[str, str], qrels: Qrels, corpus: dict[str, Document]) -> list[Pair]:
    """(query, relevant document) for each positive judgement of the train split."""
    return [
        Pair(queries[query_id], corpus[doc_id].full_text, doc_id, "labelled")
        for query_id in sorted(qrels)
        for doc_id in sorted(qrels[query_id])
        if qrels[query_id][doc_id] > 0
    ]


def generation_passages(corpus: dict[str, Document], limit: int, min_chars: int, seed: int, max_chars: int | None = None) -> dict[str, str]:
    """The passages to write queries for: a seeded sample of at most ``limit`` documents (0 = all) with at
    least ``min_chars`` characters, as id -> title and text (cut to ``max_chars``)."""
    eligible = sorted(doc_id for doc_id, doc in corpus.items() if len(doc.full_text.strip()) >= min_chars)
    if limit and len(eligible) > limit:
        eligible = sorted(random.Random(seed).sample(eligible, limit))
    return {doc_id: corpus[doc_id].full_text[:max_chars] for doc_id in eligible}


def query_pairs(queries: dict[str, list[str]], corpus: dict[str, Document], source: str) -> list[Pair]:
    """One pair per generated query, its positive the document it was written for."""
    return [Pair(query, corpus[doc_id].full_text, doc_id, source) for doc_id in sorted(queries) for query in queries[doc_id]]


def read_general_pairs(path: Path) -> list[Pair]:
    """General-domain pairs from a JSON-lines file of {anchor, positive}; they name no corpus document."""
    return [Pair(row["anchor"], row["positive"], "", "general") for _, row in read_jsonl(path, required=("anchor", "positive"))]


def domain_candidates(corpus: dict[str, Document], train: tuple[dict[str, str], Qrels], settings: SynthesizeParams) -> list[Pair]:
    """Pairs from the labelled train queries and the corpus structure, as enabled."""
    candidates: list[Pair] = []
    if settings.labelled:
        candidates += labelled_pairs(*train, corpus)
    if settings.title_to_text:
        candidates += title_pairs(corpus)
    if settings.sections:
        candidates += section_pairs(corpus)
    if settings.first_sentence:
        candidates += first_sentence_pairs(corpus)
    return candidates


def synthesize_pairs(
    candidates: list[Pair],
    general: list[Pair],
    held_out: dict[str, tuple[str, str, str]],
    settings: SynthesizeParams,
    seed: int,
    round_trip: RoundTrip | None = None,
) -> tuple[list[Pair], list[Dropped], dict]:
    """Run every quality filter and mix in general-domain pairs.

    Args:
        candidates: in-domain pairs from all sources.
        general: general-domain pairs (positive_id '').
        held_out: dev/test queries, from :func:`held_out_index`.
        settings: the filters' thresholds, the cap, the general share.
        seed: seeds the cap's and the general mix's samples.
        round_trip: the round-trip filter over the base model (None: no pair is checked).

    Returns:
        the kept pairs (sorted), the dropped ones with reasons, and the per-source counts.
    """
    quality = settings.quality
    steps: list[Callable[[list[Pair]], FilterResult]] = [
        lambda pairs: leakage_filter(pairs, held_out),
        lambda pairs: length_filter(pairs, quality.min_anchor_chars, quality.min_positive_chars),
        lambda pairs: copy_filter(pairs, quality.copy_ngram, quality.max_copy_overlap, quality.copy_filter_sources),
        deduplicate,
    ]
    dropped: list[Dropped] = []
    kept_domain, kept_general = candidates, general
    for step in steps:
        kept_domain, removed = step(kept_domain)
        kept_general, removed_general = step(kept_general)
        dropped += removed + removed_general
    for step in (round_trip or (lambda pairs: (pairs, [])),
                 lambda pairs: cap_per_source(pairs, settings.max_structure_pairs_per_source, seed, STRUCTURE_SOURCE_NAMES)):
        kept_domain, removed = step(kept_domain)
        dropped += removed
    kept_general, removed = sample_general(kept_general, len(kept_domain), settings.general_mix.fraction, seed)
    dropped += removed
    kept = sorted(kept_domain + kept_general, key=lambda p: (p.source, p.anchor, p.positive_id, p.positive))
    report = source_report(candidates + general, kept, dropped)
    return kept, dropped, report


def base_model_round_trip(base: BaseParams, machine: MachineSettings, settings: SynthesizeParams,
                          corpus: dict[str, Document]) -> RoundTrip:
    """The round-trip filter with the base model; it loads the model and stored embeddings only if a pair needs it."""

    def run(pairs: list[Pair]) -> FilterResult:
        if not any(p.source in settings.quality.round_trip_sources for p in pairs):
            return pairs, []
        # Imported here: torch takes seconds to load, and most runs have nothing to check.
        from embedft.encoding import encode, load_embeddings, load_model_with

        stored = load_embeddings(BASE_EMBEDDINGS_DIR, corpus, memory_map=True)  # searched a chunk at a time
        if stored.info.get("model") != base.model:
            raise PipelineError(f"{BASE_EMBEDDINGS_DIR} holds embeddings of '{stored.info.get('model')}', not base.model "
                                f"'{base.model}'; run `dvc repro` (embed_corpus runs first)")
        model = load_model_with(base, machine)
        return round_trip_filter(
            pairs, settings.quality.round_trip_sources, settings.quality.round_trip_k,
            lambda texts: encode(model, texts, base.query_prompt, machine.encode_batch_size), stored.vectors, stored.doc_ids,
            machine.search_chunk_size,
        )

    return run


def describe_unusable(llm_counts: dict[str, int]) -> str:
    """A warning about the cached LLM replies that gave no queries, by why; '' when there are none."""
    total = llm_counts["unusable_replies"]
    if not total:
        return ""
    why = {"empty_replies": "empty", "truncated_replies": "cut off at synthesize.llm.max_tokens",
           "unparseable_replies": "with no readable queries"}
    parts = ", ".join(f"{llm_counts[key]} {why[key]}" for key in UNUSABLE_COUNTS if llm_counts[key])
    return (f"{total} cached LLM replies gave no queries ({parts}); their passages were skipped. They were paid for and "
            "are kept in the cache: set synthesize.llm.retry_unusable: true to request them once more")


def split_run_counts(source_counts: dict) -> tuple[dict, dict]:
    """The per-source counts of :func:`gather_candidates` parted into the report's and the run log's: the LLM's
    traffic (cache hits, requests, retries, tokens paid this run) and the generator's device differ between
    identical runs."""
    run = {"llm": {key: source_counts["llm"][key] for key in RUN_COUNTS},
           "generated": {key: source_counts["generated"][key] for key in LOCAL_RUN_COUNTS}}
    report = {**source_counts,
              "llm": {key: value for key, value in source_counts["llm"].items() if key not in RUN_COUNTS},
              "generated": {key: value for key, value in source_counts["generated"].items() if key not in LOCAL_RUN_COUNTS}}
    return report, run


def gather_candidates(params: Params, machine: MachineSettings, corpus: dict[str, Document],
                      train: tuple[dict[str, str], Qrels]) -> tuple[list[Pair], list[Pair], dict]:
    """Every enabled source's candidates: (in-domain pairs, general-domain pairs, per-source counts for the metrics)."""
    settings, data = params.synthesize, params.data
    if settings.llm.enabled:
        api_key_from_env(settings.llm)  # a missing key fails now, not after the slower sources
    candidates = domain_candidates(corpus, train, settings)
    log_report = SearchLogReport()
    if settings.search_log.enabled:
        location = data.search_logs_path
        log_pairs, log_report = search_log_pairs(location, corpus, settings.search_log)
        candidates += log_pairs
        if unknown := describe_unknown(log_report, location):
            logger.warning(unknown)
    llm_counts = dict(LlmReport().counts)
    if settings.llm.enabled:
        llm = settings.llm
        passages = generation_passages(corpus, llm.max_passages, settings.quality.min_positive_chars, params.base.seed,
                                       llm.max_passage_chars)
        written, llm_counts = llm_queries(passages, llm, machine, reply_cache_path(llm, machine))
        candidates += query_pairs({d: [q for _, q in qs] for d, qs in written.items()}, corpus, "llm")
        if unusable := describe_unusable(llm_counts):
            logger.warning(unusable)
    local_counts = dict.fromkeys(LOCAL_COUNT_KEYS, 0)
    if settings.local_generator.enabled:
        local = settings.local_generator
        passages = generation_passages(corpus, local.max_passages, settings.quality.min_positive_chars, params.base.seed)
        generated, local_counts = generate_local_queries(passages, local, params.base.seed, machine.device,
                                                         trust_remote_code=params.base.trust_remote_code,
                                                         on_missing_gpu=machine.on_missing_gpu)
        candidates += query_pairs(generated, corpus, "generated")
    general: list[Pair] = []
    if settings.general_mix.fraction > 0:
        path = data.general_pairs_path
        if not path.is_file():
            raise PipelineError(f"synthesize.general_mix.fraction is {settings.general_mix.fraction:g}, but {path} "
                                "(data.general_pairs) is not a file")
        general = read_general_pairs(path)
    return candidates, general, {"search_log": log_report.as_metrics(), "llm": llm_counts, "generated": local_counts}
