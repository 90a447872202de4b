"""Stage `mine_negatives`: add hard negatives to each training pair, with the false negatives kept out.

A retriever (dense, BM25 or both fused) proposes each anchor's candidates from the rank window
[range_min, range_max); :mod:`stages.hard_negatives` drops labelled positives, their copies and candidates
scoring too close to the positive (dense scores, then optionally a cross-encoder), and audits the result
against the labelled qrels. Rows short of candidates stay short: nothing is padded with random documents.

Writes ``negatives.jsonl`` (anchor, positive, source, negative_1..k), ``scored.jsonl`` (the same rows with
the scores, for MarginMSE), the metrics and a review file. ``--round 2`` mines with round 1's fine-tuned
model (see :func:`stages.paths.round_paths`); round 1 mines with ``mine_negatives.model`` or the base model,
reusing the corpus embeddings `embed_corpus` stored.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from stages.atomic import atomic_path, write_json_atomic, write_jsonl, write_text_atomic
from stages.candidates import candidate_windows, positive_vectors, window_end
from stages.data_io import Document, read_corpus, read_jsonl, read_split, relevant
from stages.data_io import normalise_text as normalise
from stages.errors import PipelineError, run_stage
from stages.hard_negatives import (CorpusIndex, MiningResult, TrainingPair, cross_encoder_judge, drop_counts,
                                   mine_hard_negatives, score_positives)
from stages.mining_review import review_markdown, run_description
from stages.models import load_model_with
from stages.params import BaseParams, MineNegativesParams, load_params
from stages.paths import CORPUS_FILE, PAIRS_DIR, SPLIT_DIR, RoundPaths, parse_round
from stages.retrieval import StoredEmbeddings, corpus_embeddings, encode, load_embeddings

PAIRS_FILE = PAIRS_DIR / "pairs.jsonl"


def read_pairs(path: Path, corpus: dict[str, Document]) -> list[TrainingPair]:
    """The training pairs, sorted by (source, anchor, positive); a positive id missing from the corpus is an error."""
    pairs, missing = [], []
    for line, row in read_jsonl(path, required=("anchor", "positive"), optional=("positive_id", "source")):
        pair = TrainingPair(row["anchor"], row["positive"], row.get("positive_id") or "", row.get("source") or "")
        if pair.positive_id and pair.positive_id not in corpus:
            missing.append((line, pair))
        pairs.append(pair)
    if missing:
        line, pair = missing[0]
        raise PipelineError(
            f"{path}:{line}: the positive '{pair.positive_id}' of the query {pair.anchor[:80]!r} is not in the corpus "
            f"({CORPUS_FILE}); {len(missing)} pair(s) name missing documents. Rerun `dvc repro` so the pairs come from this corpus"
        )
    return sorted(pairs, key=lambda p: (p.source, p.anchor, p.positive))


def read_labelled(folder: Path, corpus: dict[str, Document]) -> dict[str, set[str]]:
    """Relevant document ids of each train-split query, keyed by its normalised text (empty without labels)."""
    queries, qrels = read_split(folder)
    labelled: dict[str, set[str]] = {}
    for query_id, documents in sorted(relevant(qrels).items()):
        unknown = sorted(set(documents) - set(corpus))
        if unknown:
            raise PipelineError(f"{folder / 'qrels.tsv'}: the query {queries[query_id][:80]!r} ({query_id}) is judged relevant to "
                                f"'{unknown[0]}', which is not in the corpus ({CORPUS_FILE}); rerun `dvc repro`")
        labelled.setdefault(normalise(queries[query_id]), set()).update(documents)
    return labelled


def output_rows(pairs: list[TrainingPair], result: MiningResult | None, doc_texts: list[str]) -> tuple[list[dict], list[dict]]:
    """The rows of ``negatives.jsonl`` and of ``scored.jsonl`` (the latter empty when nothing was mined)."""
    rows, scored = [], []
    for number, pair in enumerate(pairs):
        row = {"anchor": pair.anchor, "positive": pair.positive, "source": pair.source}
        if result is None:
            rows.append(row)
            continue
        selection = result.selections[number]
        negatives = [doc_texts[r] for r in selection.chosen_rows]
        rows.append({**row, **{f"negative_{i}": text for i, text in enumerate(negatives, start=1)}})
        cross = selection.positive_cross_score is not None
        scores = selection.cross_scores if cross else selection.scores
        scored.append({**row, "negatives": negatives,
                       "positive_score": round(float(selection.positive_cross_score if cross else selection.positive_score), 6),
                       "negative_scores": [round(float(scores[p]), 6) for p in selection.chosen],
                       "score_source": "cross_encoder" if cross else "dense"})
    return rows, scored


def mining_report(pairs: list[TrainingPair], result: MiningResult | None, num_negatives: int, window: tuple[int, int]) -> dict:
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


def miner_name(paths: RoundPaths, settings: MineNegativesParams, base: BaseParams) -> str:
    """The dense model that mines: the previous round's fine-tuned model, else mine_negatives.model, else base.model."""
    return str(paths.miner_model) if paths.miner_model else (settings.model or base.model)


def miner_embeddings(paths: RoundPaths, name: str, base: BaseParams, model, corpus: dict[str, Document]) -> StoredEmbeddings:
    """The mining model's corpus embeddings: the stored ones (memory-mapped), or computed here for a model whose
    embeddings no stage stores (a round-1 ``mine_negatives.model`` other than the base model)."""
    if paths.miner_model is None and name != base.model:
        print(f"mine_negatives: encoding the corpus with mine_negatives.model '{name}' (only the base model's are stored)")
        return corpus_embeddings(model, name, corpus, base)
    stored = load_embeddings(paths.miner_embeddings, corpus, memory_map=True)
    if stored.info.get("model") != name:
        raise PipelineError(f"{paths.miner_embeddings}: the stored embeddings are of model '{stored.info.get('model')}', "
                            f"not of the mining model '{name}'; run `dvc repro`")
    return stored


def mine(
    pairs: list[TrainingPair], index: CorpusIndex, labelled: dict[str, set[str]], paths: RoundPaths, name: str, depth: int,
    settings: MineNegativesParams, base: BaseParams,
) -> MiningResult:
    """Encode the anchors with the mining model ``name``, retrieve each one's window (ranks up to ``depth``),
    then filter and choose every pair's negatives, with the cross-encoder when one is configured."""
    started = time.perf_counter()
    key = None if paths.miner_model else ("mine_negatives.model" if settings.model else "base.model")
    miner = load_model_with(base, name, key=key)
    stored = miner_embeddings(paths, name, base, miner, index.corpus)
    anchors = sorted({p.anchor for p in pairs})
    anchor_vectors = encode(miner, anchors, base.query_prompt, base.encode_batch_size)
    windows = candidate_windows(anchors, anchor_vectors, stored.vectors, index.texts, settings, depth)
    vector_of = dict(zip(anchors, anchor_vectors))
    positives = positive_vectors(pairs, stored, lambda texts: encode(miner, texts, base.document_prompt, base.encode_batch_size))
    positive_scores = [float(vector_of[p.anchor] @ v) for p, v in zip(pairs, positives)]
    print(f"mine_negatives: {len(anchors)} queries retrieved by {settings.retriever} in {time.perf_counter() - started:.1f} s")
    scorer = judge = None
    if settings.cross_encoder:
        from stages.rescoring import CachedPairScorer, load_cross_encoder

        scorer = CachedPairScorer(load_cross_encoder(settings.cross_encoder, base.device, base.max_seq_length, base.on_missing_gpu),
                                  settings.cross_encoder_batch_size)
        judge = cross_encoder_judge(scorer, index.texts, settings.cross_encoder_margin)
    result = mine_hard_negatives(pairs, windows, positive_scores, index, labelled, settings.num_negatives, settings.sampling,
                                 settings.max_score, settings.relative_margin, base.seed, judge)
    if scorer is not None:
        score_positives(result.selections, scorer)
        print(f"mine_negatives: the cross-encoder scored {len(scorer.cache)} (query, document) pairs")
    return result


def review_path(paths: RoundPaths) -> Path:
    """reviews/mine_negatives.md for round 1, reviews/round<N>/mine_negatives.md for later rounds."""
    return Path("reviews") / ("" if paths.number == 1 else f"round{paths.number}") / "mine_negatives.md"


def main(argv: list[str] | None = None) -> None:
    paths = parse_round(argv)
    params = load_params()
    base, settings = params.base, params.mine_negatives
    corpus = read_corpus(CORPUS_FILE)
    pairs = read_pairs(PAIRS_FILE, corpus)
    labelled = read_labelled(SPLIT_DIR / "train", corpus)
    index = CorpusIndex(corpus)
    result, depth = None, settings.range_max
    if settings.num_negatives > 0:
        name, depth = miner_name(paths, settings, base), window_end(settings, len(corpus))
        result = mine(pairs, index, labelled, paths, name, depth, settings, base)
        review = review_markdown(pairs, result, index, settings, base.seed, run_description(settings, name, depth))
    else:
        review = "# Hard negatives: review sample\n\nMining is off (mine_negatives.num_negatives: 0): no negatives to review.\n"
    rows, scored = output_rows(pairs, result, index.texts)
    report = mining_report(pairs, result, settings.num_negatives, (settings.range_min, depth))
    with atomic_path(paths.negatives, is_dir=True) as out:
        write_jsonl(out / "negatives.jsonl", rows)
        if scored:
            write_jsonl(out / "scored.jsonl", scored)
    write_json_atomic(paths.metrics / "mine.json", report)
    write_text_atomic(review_path(paths), review)
    audit = report.get("false_negatives", {})
    print(f"mine_negatives: {report['negatives_written']} negatives for {report['pairs']} pairs; "
          f"{report['short_pairs']} short, {report['pairs_without_negative']} without any "
          f"({report['queries_without_negative']} queries); dropped {report['dropped']}")
    if audit.get("audited_pairs"):
        print(f"mine_negatives: labelled-relevant share of mined negatives (false-negative rate) on {audit['audited_pairs']} "
              f"labelled pairs: {audit['before_filters']['rate']:.4f} without the score filters, "
              f"{audit['after_filters']['rate']:.4f} with them, {audit['output']['rate']:.4f} in the output")


if __name__ == "__main__":
    run_stage(main)
