"""The systems `evaluate` scores and how it compares them: every system's ranking, agreement without judgements,
the per-query table, the Recall@k curve, and the report with paired statistics and the verdict."""

from __future__ import annotations

import logging

import numpy as np

from embedft.config import SYSTEM_LABELS, Bm25Params, EvaluateParams
from embedft.core import Document
from embedft.encoding import StoredEmbeddings
from embedft.evaluation.ir_metrics import mean_metrics, metric_deltas, per_query_metrics
from embedft.evaluation.statistics import compare_systems
from embedft.evaluation.verdict import decide_verdict
from embedft.retrieval import Run, bm25_run, normalise_rows, rank_corpus, reciprocal_rank_fusion, weighted_fusion

logger = logging.getLogger(__name__)

COMPARISONS = (("finetuned", "base"), ("finetuned", "bm25"), ("hybrid", "base"), ("hybrid", "finetuned"), ("hybrid", "hybrid_rrf"),
               ("hybrid_rrf", "base"))
SUMMARY_SYSTEMS = ("base", "finetuned", "bm25", "hybrid", "concatenated")
"""The systems metrics/evaluate.json shows (the rest, RRF, candidates and reranking, are in the report file)."""
RECALL_CURVE_KS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000)


def retrieval_depth(settings: EvaluateParams, corpus_size: int) -> int:
    """The deepest cutoff, clipped (with a warning) to the corpus size."""
    if settings.depth > corpus_size:
        logger.warning("metric cutoff %d exceeds the corpus (%d documents); ranking all %d", settings.depth, corpus_size,
                       corpus_size)
        return corpus_size
    return settings.depth


def system_runs(
    query_ids: list[str], query_texts: list[str], query_vectors: dict[str, np.ndarray], corpus: dict[str, Document],
    stored: dict[str, StoredEmbeddings], settings: EvaluateParams, depth: int, chunk_size: int, hybrid: dict,
    lexical: Bm25Params | None = None,
) -> dict[str, Run]:
    """Rankings by every system: base, fine-tuned, BM25, the weighted and the RRF hybrid of fine-tuned and BM25,
    optionally base ⊕ fine-tuned, and each further dense model of ``query_vectors`` (the candidate models).

    Args:
        query_vectors: each dense system's query vectors ('base', 'finetuned', candidates), rows in ``query_ids`` order.
        stored: the same systems' corpus embeddings.
        hybrid: the weighted hybrid's choice (weight, normalisation), as `tune_hybrid` wrote it.
        lexical: how BM25 reads text (the ``bm25`` params; None: their defaults).
    """
    dense = {name: rank_corpus(query_ids, vectors, stored[name], depth, chunk_size) for name, vectors in query_vectors.items()}
    runs = {"base": dense["base"], "finetuned": dense["finetuned"]}
    runs["bm25"] = bm25_run(list(corpus), [d.full_text for d in corpus.values()], query_ids, query_texts, depth,
                            lexical or Bm25Params())
    runs["hybrid"] = weighted_fusion(runs["finetuned"], runs["bm25"], hybrid["weight"], hybrid["normalisation"], depth)
    runs["hybrid_rrf"] = reciprocal_rank_fusion([runs["finetuned"], runs["bm25"]], depth)
    if settings.concatenated:
        joined = StoredEmbeddings(normalise_rows(np.hstack([stored["base"].vectors, stored["finetuned"].vectors])),
                                  stored["base"].doc_ids, {"model": "base+finetuned"})
        joined_queries = normalise_rows(np.hstack([query_vectors["base"], query_vectors["finetuned"]]))
        runs["concatenated"] = rank_corpus(query_ids, joined_queries, joined, depth, chunk_size)
    runs.update({name: run for name, run in dense.items() if name not in runs})
    return runs


def system_agreement(runs: dict[str, Run], k: int) -> dict[str, float]:
    """Mean overlap of each pair of systems' top-k documents (|A ∩ B| / k), averaged over queries."""
    def top(run: Run, query_id: str) -> set[str]:
        return {d for d, _ in sorted(run.get(query_id, {}).items(), key=lambda item: (-item[1], item[0]))[:k]}

    names = [n for n in ("base", "finetuned", "bm25") if n in runs]
    query_ids = sorted(runs[names[0]])
    agreement = {}
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            overlaps = [len(top(runs[first], q) & top(runs[second], q)) / k for q in query_ids]
            agreement[f"{first}_vs_{second}"] = round(sum(overlaps) / len(overlaps), 6) if overlaps else 0.0
    return agreement


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


def recall_curve(qrels, runs: dict[str, Run], depth: int) -> str:
    """CSV of mean Recall@k for each k up to the retrieval depth, one column per system (for `dvc plots`).

    The columns are named as the chart's legend shows them (:data:`SYSTEM_LABELS`; other runs, such as an
    earlier round, by their own name).
    """
    ks = [k for k in RECALL_CURVE_KS if k <= depth]
    means = {name: mean_metrics(per_query_metrics(qrels, run, tuple(f"R@{k}" for k in ks))) for name, run in runs.items()}
    lines = [",".join(["k", *(SYSTEM_LABELS.get(name, name) for name in runs)])]
    lines += [",".join([str(k), *(f"{means[name][f'recall@{k}']:.6f}" for name in runs)]) for k in ks]
    return "\n".join(lines) + "\n"


def headline_scores(per_query: dict[str, dict[str, dict[str, float]]], headline: str) -> dict[str, np.ndarray]:
    """Each system's per-query headline values, queries in sorted id order."""
    query_ids = sorted(next(iter(per_query.values()))) if per_query else []
    return {name: np.array([rows[q][headline] for q in query_ids]) for name, rows in per_query.items()}


def evaluation_report(per_query: dict[str, dict[str, dict[str, float]]], settings: EvaluateParams, seed: int,
                      pairs: tuple[tuple[str, str], ...] = COMPARISONS) -> dict:
    """Means per system, fine-tuned minus base, paired comparisons on the headline metric, and the verdict.

    Args:
        pairs: the (new, old) systems compared with the paired bootstrap and randomisation test (a pair naming a
            system that was not scored is skipped).
    """
    means = {name: mean_metrics(rows) for name, rows in per_query.items()}
    scores = headline_scores(per_query, settings.headline)
    comparisons = {
        f"{new}_vs_{old}": compare_systems(scores[new], scores[old], settings.bootstrap_resamples, seed)
        for new, old in pairs if new in scores and old in scores
    }
    verdict = decide_verdict(comparisons["finetuned_vs_base"], means["base"][settings.headline], settings)
    return {"test_queries": len(per_query["base"]), **means,
            "delta_finetuned_vs_base": metric_deltas(means["finetuned"], means["base"]), "comparisons": comparisons, **verdict}


def summary_metrics(settings: EvaluateParams) -> list[str]:
    """The metrics each system shows in metrics/evaluate.json: the headline, then Recall at every cutoff of 10 or
    more (how many relevant documents a reader or reranker of the top k gets to see)."""
    return [settings.headline, *(f"recall@{k}" for k in sorted(set(settings.recall_at)) if k >= 10)]


def evaluation_summary(report: dict, settings: EvaluateParams) -> dict:
    """metrics/evaluate.json: the few numbers a reviewer compares, out of the full report.

    Per system of :data:`SUMMARY_SYSTEMS` the :func:`summary_metrics`; fine-tuned minus base (and minus the previous
    round) as difference, 95% interval and p-value; the verdict and the leak flag; the system to ship (chosen on
    dev), the best alternative of the other kind and the shipped system's test difference to it; the number of
    test queries; and the forgetting drop when an out-of-domain set is configured. Everything else stays in the
    report file.
    """
    summary: dict = {key: report[key] for key in ("test_queries", "judged_queries") if key in report}
    if "verdict" not in report:
        return summary
    shown = summary_metrics(settings)
    for name in [*SUMMARY_SYSTEMS, *sorted(key for key in report if key.startswith("round") and isinstance(report[key], dict))]:
        if isinstance(report.get(name), dict):
            summary[name] = {metric: report[name][metric] for metric in shown if metric in report[name]}
    for name, comparison in report["comparisons"].items():
        if name == "finetuned_vs_base" or name.startswith("finetuned_vs_round"):
            summary[name] = {key: comparison[key] for key in ("difference", "ci_low", "ci_high", "p_value")}
    summary.update(verdict=report["verdict"], suspected_leak=report["suspected_leak"])
    shipped = report.get("shipped", {})
    if shipped.get("system"):
        summary["shipped"] = {"system": shipped["system"], "best_alternative": shipped["best_alternative"],
                              **{key: shipped["vs_best_alternative"][key] for key in ("difference", "ci_low", "ci_high", "p_value")
                                 if "vs_best_alternative" in shipped}}
    if "forgetting" in report:
        summary[f"forgetting_drop_{settings.headline}"] = report["forgetting"][f"drop_{settings.headline}"]
    return summary
