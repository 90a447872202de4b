"""Stage `mine_negatives`: add hard negatives to each training pair, with the false negatives kept out.

A retriever (dense, BM25 or both fused) proposes each anchor's candidates from the rank window
[range_min, range_max); embedft/mining/selection.py drops labelled positives, their copies and candidates
scoring too close to the positive (dense scores, then optionally a cross-encoder), and audits the result
against the labelled qrels. Rows short of candidates stay short: nothing is padded with random documents.

Writes ``negatives.jsonl`` (anchor, positive, source, negative_1..k), ``scored.jsonl`` (the same rows with
the scores, for MarginMSE), the false-negative rates (``metrics/mine.json``), every count and the audit
(``reports/mine.json``) and a review file. ``--round 2`` mines with round 1's fine-tuned
model and the corpus embeddings `embed_finetuned` stored (see embedft/core/artifacts.py); round 1 mines with
``mine_negatives.model`` or the base model, reusing the corpus embeddings `embed_corpus` stored.
"""

from __future__ import annotations

from embedft.config import load_machine, load_params
from embedft.core import artifacts, read_corpus, read_pairs, run_stage, write_json_atomic, write_negatives, write_text_atomic
from embedft.core.artifacts import CORPUS_FILE, PAIRS_DIR, PAIRS_FILE, SPLIT_DIR
from embedft.mining import (
    CorpusIndex,
    mine,
    miner_name,
    mining_report,
    mining_summary,
    output_rows,
    read_labelled,
    review_markdown,
    run_description,
    window_end,
)


def main(argv: list[str] | None = None) -> None:
    paths = artifacts.parse_round(argv)
    params, machine = load_params(), load_machine()
    base, settings = params.base, params.mine_negatives
    corpus = read_corpus(CORPUS_FILE)
    pairs = sorted(read_pairs(PAIRS_DIR / PAIRS_FILE, corpus), key=lambda p: (p.source, p.anchor, p.positive))
    labelled = read_labelled(SPLIT_DIR / "train", corpus)
    index = CorpusIndex(corpus)
    result, depth = None, settings.range_max
    if settings.num_negatives > 0:
        name, depth = miner_name(paths, settings, base), window_end(settings, len(corpus))
        result = mine(pairs, index, labelled, paths, name, depth, settings, base, machine, params.bm25)
        review = review_markdown(pairs, result, index, settings, base.seed, run_description(settings, name, depth))
    else:
        review = "# Hard negatives: review sample\n\nMining is off (mine_negatives.num_negatives: 0): no negatives to review.\n"
    rows, scored = output_rows(pairs, result, index.texts)
    report = mining_report(pairs, result, settings.num_negatives, (settings.range_min, depth))
    write_negatives(paths.negatives, rows, scored)
    write_json_atomic(paths.mine_report, report)
    write_json_atomic(paths.mine_metrics, mining_summary(report))
    write_text_atomic(paths.mine_review, review)
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
