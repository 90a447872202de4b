"""Stage `evaluate`: base vs fine-tuned vs BM25 vs hybrid on the test split, with paired statistics and a verdict.

Writes ``metrics/evaluate.json`` (mean metrics per system, fine-tuned minus base, the paired comparisons and
the verdict), ``metrics/evaluate_per_query.csv``, and the fine-tuned model's corpus embeddings, which
`truncate_eval` reuses. The base model's corpus embeddings come from `mine_negatives`, not recomputed.
"""

from __future__ import annotations

import numpy as np

from stages.atomic import atomic_path, write_json_atomic
from stages.data_io import Document, read_corpus, read_split
from stages.errors import run_stage
from stages.ir_metrics import mean_metrics, metric_deltas, per_query_metrics
from stages.lexical import bm25_run
from stages.models import load_model
from stages.params import BaseParams, EvaluateParams, load_params
from stages.paths import BASE_EMBEDDINGS_DIR, FINETUNED_EMBEDDINGS_DIR, FINETUNED_MODEL_DIR, METRICS_DIR, SPLIT_DIR, corpus_path
from stages.retrieval import Run, StoredEmbeddings, encode, load_embeddings, rank_corpus, reciprocal_rank_fusion, save_embeddings
from stages.statistics import compare_systems

HEADLINE = "ndcg@10"
COMPARISONS = (("finetuned", "base"), ("finetuned", "bm25"), ("hybrid", "base"))


def system_runs(
    queries: dict[str, str], corpus: dict[str, Document], finetuned, finetuned_corpus: StoredEmbeddings,
    base: BaseParams, settings: EvaluateParams,
) -> dict[str, Run]:
    """Rankings of the test queries by every system: base, fine-tuned, BM25, and fine-tuned + BM25 fused."""
    query_ids = sorted(queries)
    query_texts = [queries[q] for q in query_ids]
    base_model = load_model(base.model, base.device, base.max_seq_length)
    runs = {}
    for name, model, stored in (("base", base_model, load_embeddings(BASE_EMBEDDINGS_DIR)), ("finetuned", finetuned, finetuned_corpus)):
        vectors = encode(model, query_texts, base.query_prompt, base.encode_batch_size, progress=False)
        runs[name] = rank_corpus(query_ids, vectors, stored, settings.top_k, base.search_chunk_size)
    runs["bm25"] = bm25_run(list(corpus), [d.full_text for d in corpus.values()], query_ids, query_texts, settings.top_k)
    runs["hybrid"] = reciprocal_rank_fusion([runs["finetuned"], runs["bm25"]], settings.top_k)
    return runs


def decide_verdict(comparison: dict, base_score: float, settings: EvaluateParams) -> dict:
    """'ship' if the gain's CI lower bound clears the threshold, 'regression' if it falls below, else 'marginal'."""
    if comparison["difference"] < -settings.regression_tolerance:
        verdict = "regression"
    elif comparison["ci_low"] > settings.ship_min_ci_low:
        verdict = "ship"
    else:
        verdict = "marginal"
    relative = comparison["difference"] / base_score if base_score > 0 else 0.0
    return {"verdict": verdict, "relative_gain": round(relative, 6), "suspected_leak": int(relative > settings.leak_relative_gain)}


def per_query_table(per_query: dict[str, dict[str, dict[str, float]]]) -> str:
    """CSV with one row per (query, system) and one column per metric."""
    systems = list(per_query)
    metrics = list(next(iter(per_query[systems[0]].values())))
    lines = [",".join(["query_id", "system", *metrics])]
    for query_id in sorted(per_query[systems[0]]):
        for system in systems:
            values = per_query[system][query_id]
            lines.append(",".join([f'"{query_id}"', system, *(f"{values[m]:.6f}" for m in metrics)]))
    return "\n".join(lines) + "\n"


def evaluation_report(per_query: dict[str, dict[str, dict[str, float]]], settings: EvaluateParams, seed: int) -> dict:
    """Means per system, fine-tuned minus base, paired comparisons on nDCG@10, and the verdict."""
    means = {name: mean_metrics(rows) for name, rows in per_query.items()}
    query_ids = sorted(per_query["base"])
    scores = {name: np.array([rows[q][HEADLINE] for q in query_ids]) for name, rows in per_query.items()}
    comparisons = {
        f"{new}_vs_{old}": compare_systems(scores[new], scores[old], settings.bootstrap_resamples, seed)
        for new, old in COMPARISONS
    }
    verdict = decide_verdict(comparisons["finetuned_vs_base"], means["base"][HEADLINE], settings)
    return {"test_queries": len(query_ids), **means, "delta_finetuned_vs_base": metric_deltas(means["finetuned"], means["base"]),
            "comparisons": comparisons, **verdict}


def announce(report: dict) -> None:
    """Print the table and the verdict; a regression or a suspected leak is printed loudly."""
    for name in ("base", "finetuned", "bm25", "hybrid"):
        print(f"evaluate: {name:<10} " + "  ".join(f"{k}={v:.4f}" for k, v in report[name].items()))
    c = report["comparisons"]["finetuned_vs_base"]
    print(f"evaluate: fine-tuned - base nDCG@10 = {c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, "
          f"p = {c['p_value']:.4f}; {c['wins']} won, {c['ties']} tied, {c['losses']} lost) -> verdict: {report['verdict'].upper()}")
    if report["verdict"] == "regression":
        print("!" * 78 + "\n!! REGRESSION: the fine-tuned model is WORSE than the base model on nDCG@10.\n" + "!" * 78)
    if report["suspected_leak"]:
        print(f"!! WARNING: a {report['relative_gain']:.0%} relative gain is suspicious: check test queries are not in training.")


def main() -> None:
    params = load_params()
    base, settings = params.base, params.evaluate
    corpus = read_corpus(corpus_path(params.data))
    queries, qrels = read_split(SPLIT_DIR / "test")
    finetuned = load_model(str(FINETUNED_MODEL_DIR), base.device, base.max_seq_length)
    finetuned_corpus = StoredEmbeddings(
        vectors=encode(finetuned, [d.full_text for d in corpus.values()], base.document_prompt, base.encode_batch_size),
        doc_ids=list(corpus),
        info={"model": str(FINETUNED_MODEL_DIR), "document_prompt": base.document_prompt, "max_seq_length": base.max_seq_length},
    )
    if not queries:
        report, table = {"test_queries": 0, "corpus_documents": len(corpus)}, "query_id,system\n"
        print("evaluate: the dataset has no labelled test queries, so there is nothing to measure. "
              "Add queries.jsonl and qrels to the dataset folder to compare base and fine-tuned models.")
    else:
        runs = system_runs(queries, corpus, finetuned, finetuned_corpus, base, settings)
        per_query = {name: per_query_metrics(qrels, run) for name, run in runs.items()}
        report = {"corpus_documents": len(corpus), **evaluation_report(per_query, settings, base.seed)}
        table = per_query_table(per_query)
        announce(report)
    save_embeddings(FINETUNED_EMBEDDINGS_DIR, finetuned_corpus)
    with atomic_path(METRICS_DIR / "evaluate_per_query.csv") as temporary:
        temporary.write_text(table, encoding="utf-8")
    write_json_atomic(METRICS_DIR / "evaluate.json", report)


if __name__ == "__main__":
    run_stage(main)
