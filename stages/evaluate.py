"""Stage `evaluate`: base vs fine-tuned vs BM25 vs hybrid on the test split, with paired statistics and a verdict.

Writes ``metrics/evaluate.json`` (what a reviewer compares: the headline metrics per system, fine-tuned minus
base with its interval and p-value, the verdict), ``reports/evaluate.json`` (every metric per system, every
paired comparison, the leakage check, forgetting), ``reports/evaluate_per_query.csv`` and the Recall@k curve
for `dvc plots`.
It only measures: the corpus embeddings it searches come from `embed_corpus` (base) and `embed_finetuned`
(the fine-tuned model); only the test queries are encoded here. ``--round N`` evaluates round N's model and
also compares it with round N-1's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedft.config import load_machine, load_params
from embedft.core import artifacts, read_corpus, read_pairs, read_split, run_stage, write_json_atomic, write_text_atomic
from embedft.core.artifacts import BASE_EMBEDDINGS_DIR, CORPUS_FILE, PAIRS_DIR, PAIRS_FILE, SPLIT_DIR
from embedft.encoding import encode, load_embeddings, load_model_with
from embedft.evaluation import (
    COMPARISONS,
    count_leaks,
    evaluation_report,
    evaluation_summary,
    forgetting_report,
    metric_deltas,
    per_query_metrics,
    per_query_table,
    recall_curve,
    retrieval_depth,
    system_agreement,
    system_runs,
    verdict_banner,
)
from embedft.retrieval import rank_corpus


def announce(report: dict, headline: str) -> None:
    """Print the table, the leakage counts and the verdict; a regression or a suspected leak is printed loudly."""
    for name in [k for k in ("base", "finetuned", "bm25", "hybrid", "concatenated") if k in report]:
        print(f"evaluate: {name:<12} " + "  ".join(f"{k}={v:.4f}" for k, v in report[name].items()))
    c = report["comparisons"]["finetuned_vs_base"]
    print(f"evaluate: fine-tuned - base {headline} = {c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, "
          f"p = {c['p_value']:.4f}; {c['wins']} won, {c['ties']} tied, {c['losses']} lost) -> verdict: {report['verdict'].upper()}")
    leaks = report["leakage"]
    if leaks["near_duplicate"]:
        print(f"evaluate: WARNING: {leaks['near_duplicate']} test queries are in the training pairs "
              f"({leaks['exact']} verbatim, {leaks['normalised']} after normalisation, the rest as near-duplicates)")
    if "forgetting" in report:
        f = report["forgetting"]
        c = f["finetuned_vs_base"]
        print(f"evaluate: out-of-domain ({f['queries']} queries): base {f['base'][headline]:.4f}, fine-tuned "
              f"{f['finetuned'][headline]:.4f}; drop {f[f'drop_{headline}']:+.4f} "
              f"(95% CI of the change {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")
    if banner := verdict_banner(report, headline):
        print(banner)


def main(argv: list[str] | None = None) -> None:
    paths = artifacts.parse_round(argv)  # round N > 1 evaluates models/roundN and also compares it with round N-1
    previous = f"round{paths.number - 1}" if paths.number > 1 else None
    params, machine = load_params(), load_machine()
    base, settings = params.base, params.evaluate
    corpus = read_corpus(CORPUS_FILE)
    queries, qrels = read_split(SPLIT_DIR / "test")
    table, curve = "query_id,system\n", "k\n"
    if not queries:
        report = {"test_queries": 0, "corpus_documents": len(corpus)}
        print("evaluate: the dataset has no labelled test queries, so no quality metric was computed. "
              "Add queries.jsonl and qrels to the dataset folder to compare base and fine-tuned models.")
    else:
        # Memory-mapped: the exact search reads the stored corpus one chunk at a time.
        stored = {"base": load_embeddings(BASE_EMBEDDINGS_DIR, corpus, memory_map=True),
                  "finetuned": load_embeddings(paths.model_embeddings, corpus, memory_map=True)}
        depth = retrieval_depth(settings, len(corpus))
        query_ids = sorted(queries)
        query_texts = [queries[q] for q in query_ids]
        models = {"base": load_model_with(base, machine), "finetuned": load_model_with(base, machine, str(paths.model), key=None)}

        def encode_queries(model, texts: list[str]) -> np.ndarray:
            return encode(model, texts, base.query_prompt, machine.encode_batch_size, progress=False)

        query_vectors = {name: encode_queries(model, query_texts) for name, model in models.items()}
        runs = system_runs(query_ids, query_texts, query_vectors, corpus, stored, settings, depth, machine.search_chunk_size,
                           params.bm25)
        if previous:
            previous_vectors = encode_queries(load_model_with(base, machine, str(paths.miner_model), key=None), query_texts)
            previous_corpus = load_embeddings(paths.miner_embeddings, corpus, memory_map=True)
            runs[previous] = rank_corpus(query_ids, previous_vectors, previous_corpus, depth, machine.search_chunk_size)
        if not qrels:
            report = {"test_queries": len(queries), "judged_queries": 0, "corpus_documents": len(corpus),
                      "agreement_at_10": system_agreement(runs, 10)}
            print(f"evaluate: the {len(queries)} test queries have no relevance judgements, so no quality metric was computed. "
                  "Overlap of the systems' top 10 (1.0 = identical): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in report["agreement_at_10"].items()))
        else:
            per_query = {name: per_query_metrics(qrels, run, settings.measures()) for name, run in runs.items()}
            pairs = COMPARISONS + ((("finetuned", previous),) if previous else ())
            report = {"corpus_documents": len(corpus), **evaluation_report(per_query, settings, base.seed, pairs)}
            if previous:
                report[f"delta_finetuned_vs_{previous}"] = metric_deltas(report["finetuned"], report[previous])
            anchors = sorted({pair.anchor for pair in read_pairs(PAIRS_DIR / PAIRS_FILE)})
            anchor_vectors = encode_queries(models["finetuned"], anchors)
            report["leakage"], leaked = count_leaks(queries, anchors, query_vectors["finetuned"], anchor_vectors, settings.leak_similarity)
            forgetting = forgetting_report(Path(settings.out_of_domain_dir), models, base, settings, machine)
            if forgetting:
                report["forgetting"] = forgetting
            table, curve = per_query_table(per_query), recall_curve(qrels, runs, depth)
            announce(report, settings.headline)
            if previous:
                c = report["comparisons"][f"finetuned_vs_{previous}"]
                print(f"evaluate: round {paths.number} - {previous} {settings.headline} = {c['difference']:+.4f} "
                      f"(95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, p = {c['p_value']:.4f})")
            if leaked:
                print(f"evaluate: leaked test query ids (first 5): {', '.join(leaked[:5])}")
    if previous:
        report["round"] = paths.number
    write_text_atomic(paths.per_query_table, table)
    write_text_atomic(paths.recall_plot, curve)
    write_json_atomic(paths.evaluate_report, report)
    write_json_atomic(paths.evaluate_metrics, evaluation_summary(report, settings))


if __name__ == "__main__":
    run_stage(main)
