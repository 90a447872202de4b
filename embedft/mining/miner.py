"""Mining one round's hard negatives: the labelled positives to keep out, the mining model and its corpus
embeddings, the candidates' selection, and the rows and report the `mine_negatives` stage writes."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedft.config import BaseParams, Bm25Params, MachineSettings, MineNegativesParams
from embedft.core import Document, MinedRow, Pair, PipelineError, ScoredRow, normalise_query, read_split, relevant
from embedft.core.artifacts import CORPUS_FILE, RoundPaths
from embedft.encoding import (
    CachedPairScorer,
    StoredEmbeddings,
    corpus_embeddings,
    encode,
    load_cross_encoder,
    load_embeddings,
    load_model_with,
)
from embedft.mining.candidates import candidate_windows, positive_vectors
from embedft.mining.corpus_index import CorpusIndex
from embedft.mining.selection import MiningResult, cross_encoder_judge, drop_counts, mine_hard_negatives, score_positives

logger = logging.getLogger(__name__)


def read_labelled(folder: Path, corpus: dict[str, Document]) -> dict[str, set[str]]:
    """Relevant document ids of each train-split query, keyed by its normalised text (empty without labels)."""
    queries, qrels = read_split(folder)
    labelled: dict[str, set[str]] = {}
    for query_id, documents in sorted(relevant(qrels).items()):
        unknown = sorted(set(documents) - set(corpus))
        if unknown:
            raise PipelineError(f"{folder / 'qrels.tsv'}: the query {queries[query_id][:80]!r} ({query_id}) is judged relevant to "
                                f"'{unknown[0]}', which is not in the corpus ({CORPUS_FILE}); rerun `dvc repro`")
        labelled.setdefault(normalise_query(queries[query_id]), set()).update(documents)
    return labelled


def output_rows(pairs: list[Pair], result: MiningResult | None, doc_texts: Sequence[str]) -> tuple[list[MinedRow], list[ScoredRow]]:
    """The rows of ``negatives.jsonl`` and of ``scored.jsonl`` (the latter empty when nothing was mined)."""
    rows, scored = [], []
    for number, pair in enumerate(pairs):
        if result is None:
            rows.append(MinedRow(pair.anchor, pair.positive, pair.source))
            continue
        selection = result.selections[number]
        negatives = tuple(doc_texts[r] for r in selection.chosen_rows)
        rows.append(MinedRow(pair.anchor, pair.positive, pair.source, negatives))
        cross = selection.positive_cross_score is not None
        scores = selection.cross_scores if cross else selection.scores
        scored.append(ScoredRow(pair.anchor, pair.positive, pair.source, negatives,
                                round(float(selection.positive_cross_score if cross else selection.positive_score), 6),
                                tuple(round(float(scores[p]), 6) for p in selection.chosen),
                                "cross_encoder" if cross else "dense"))
    return rows, scored


def mining_report(pairs: list[Pair], result: MiningResult | None, num_negatives: int, window: tuple[int, int]) -> dict:
    """metrics/mine.json: counts of pairs, negatives, short rows, drops per filter, scores and the audit."""
    selections = result.selections if result else []
    counts = [len(s.chosen) for s in selections] or [0] * len(pairs)
    empty = [pair.anchor for pair, count in zip(pairs, counts) if count == 0 and num_negatives]
    negative_scores = [float(s.scores[p]) for s in selections for p in s.chosen]
    report = {
        "pairs": len(pairs),
        "queries": len({p.anchor for p in pairs}),
        "num_negatives": num_negatives,
        "range_min": window[0],
        "range_max": window[1],
        "window_candidates": sum(len(s.rows) for s in selections),
        "negatives_written": sum(counts),
        "full_pairs": sum(count == num_negatives for count in counts) if num_negatives else 0,
        "short_pairs": sum(0 < count < num_negatives for count in counts),
        "pairs_without_negative": len(empty),
        "queries_without_negative": len(set(empty)),
        "dropped": drop_counts(selections),
        "mean_positive_dense_score": round(float(np.mean([s.positive_score for s in selections])), 6) if selections else 0.0,
        "mean_negative_dense_score": round(float(np.mean(negative_scores)), 6) if negative_scores else 0.0,
    }
    if result is not None:
        report["false_negatives"] = result.audit.report()
    return report


def mining_summary(report: dict) -> dict:
    """metrics/mine.json: the share of the mined negatives that the labels call relevant (false negatives), after
    the score filters and in the output, over the audited pairs (0.0 where nothing was audited)."""
    audit = report.get("false_negatives", {})
    return {"false_negative_rate_after_filters": audit.get("after_filters", {}).get("rate", 0.0),
            "false_negative_rate_output": audit.get("output", {}).get("rate", 0.0)}


def miner_name(paths: RoundPaths, settings: MineNegativesParams, base: BaseParams) -> str:
    """The dense model that mines: the previous round's fine-tuned model, else mine_negatives.model, else base.model."""
    return str(paths.miner_model) if paths.miner_model else (settings.model or base.model)


def miner_embeddings(paths: RoundPaths, name: str, base: BaseParams, machine: MachineSettings, model,
                     corpus: dict[str, Document]) -> StoredEmbeddings:
    """The mining model's corpus embeddings: the stored ones (memory-mapped), or computed here for a model whose
    embeddings no stage stores (a round-1 ``mine_negatives.model`` other than the base model)."""
    if paths.miner_model is None and name != base.model:
        logger.info("encoding the corpus with mine_negatives.model '%s' (only the base model's are stored)", name)
        return corpus_embeddings(model, name, corpus, base, machine.encode_batch_size)
    stored = load_embeddings(paths.miner_embeddings, corpus, memory_map=True)
    if stored.info.get("model") != name:
        raise PipelineError(f"{paths.miner_embeddings}: the stored embeddings are of model '{stored.info.get('model')}', "
                            f"not of the mining model '{name}'; run `dvc repro`")
    return stored


def mine(
    pairs: list[Pair], index: CorpusIndex, labelled: dict[str, set[str]], paths: RoundPaths, name: str, depth: int,
    settings: MineNegativesParams, base: BaseParams, machine: MachineSettings, lexical: Bm25Params | None = None,
) -> MiningResult:
    """Encode the anchors with the mining model ``name``, retrieve each one's window (ranks up to ``depth``),
    then filter and choose every pair's negatives, with the cross-encoder when one is configured. ``lexical``: the
    ``bm25`` params, for the bm25 and hybrid retrievers (None: their defaults)."""
    started = time.perf_counter()
    key = None if paths.miner_model else ("mine_negatives.model" if settings.model else "base.model")
    miner = load_model_with(base, machine, name, key=key)
    stored = miner_embeddings(paths, name, base, machine, miner, index.corpus)
    anchors = sorted({p.anchor for p in pairs})
    anchor_vectors = encode(miner, anchors, base.query_prompt, machine.encode_batch_size)
    windows = candidate_windows(anchors, anchor_vectors, stored.vectors, index.texts, settings, depth, machine.search_memory_mb,
                                lexical)
    vector_of = dict(zip(anchors, anchor_vectors))
    positives = positive_vectors(pairs, stored, lambda texts: encode(miner, texts, base.document_prompt, machine.encode_batch_size))
    positive_scores = [float(vector_of[p.anchor] @ v) for p, v in zip(pairs, positives)]
    logger.info("%d queries retrieved by %s in %.1f s", len(anchors), settings.retriever, time.perf_counter() - started)
    scorer = judge = None
    if settings.cross_encoder:
        cross_encoder = load_cross_encoder(settings.cross_encoder, machine.device, base.max_seq_length, machine.on_missing_gpu)
        scorer = CachedPairScorer(cross_encoder, machine.cross_encoder_batch_size)
        judge = cross_encoder_judge(scorer, index.texts, settings.cross_encoder_margin)
    result = mine_hard_negatives(pairs, windows, positive_scores, index, labelled, settings.num_negatives, settings.sampling,
                                 settings.max_score, settings.relative_margin, base.seed, judge)
    if scorer is not None:
        score_positives(result.selections, scorer)
        logger.info("the cross-encoder scored %d (query, document) pairs", len(scorer.cache))
    return result
