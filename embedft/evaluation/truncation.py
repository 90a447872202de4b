"""Matryoshka truncation and quantization: retrieval quality at each embedding width and precision, its
retention against full width, and the bytes each vector costs."""

from __future__ import annotations

import numpy as np

from embedft.config import SYSTEM_LABELS, EvaluateParams, TruncateEvalParams
from embedft.core import Qrels
from embedft.encoding import StoredEmbeddings
from embedft.evaluation.ir_metrics import mean_metrics, per_query_metrics
from embedft.evaluation.quantization import quantized_pair
from embedft.retrieval import normalise_rows, rank_corpus


def truncation_grid(
    query_ids: list[str], query_vectors: np.ndarray, stored: StoredEmbeddings, qrels: Qrels,
    settings: TruncateEvalParams, metrics: EvaluateParams, chunk_size: int,
) -> tuple[dict, dict[tuple[int, str], dict[str, dict[str, float]]]]:
    """Metrics, retention and bytes per vector for each (dim, precision); also the per-query scores of each cell."""
    depth = min(metrics.depth, stored.vectors.shape[0])
    cells, per_query = {}, {}
    for dim in sorted(set(settings.dims), reverse=True):
        corpus_dim, queries_dim = normalise_rows(stored.vectors[:, :dim]), normalise_rows(query_vectors[:, :dim])
        for precision in settings.precisions:
            corpus_q, queries_q, size = quantized_pair(corpus_dim, queries_dim, precision)
            run = rank_corpus(query_ids, queries_q, StoredEmbeddings(corpus_q, stored.doc_ids, {}), depth, chunk_size)
            per_query[(dim, precision)] = per_query_metrics(qrels, run, metrics.measures())
            cells.setdefault(str(dim), {})[precision] = {**mean_metrics(per_query[(dim, precision)]), "bytes_per_vector": size}
    full = stored.vectors.shape[1]
    reference = cells.get(str(full), {}).get("float32") or mean_metrics(
        per_query_metrics(qrels, rank_corpus(query_ids, query_vectors, stored, depth, chunk_size), metrics.measures()))
    for by_precision in cells.values():
        for values in by_precision.values():
            top = reference[metrics.headline]
            values[f"retention_{metrics.headline}_pct"] = round(100.0 * values[metrics.headline] / top, 2) if top > 0 else 0.0
    return cells, per_query


def plot_table(report: dict, settings: TruncateEvalParams, headline: str) -> str:
    """CSV of the headline metric against dim, one column per (model, precision), for `dvc plots`.

    The columns are named as the chart's legend shows them (``fine-tuned int8``), see :data:`SYSTEM_LABELS`.
    """
    columns = [(model, precision) for model in ("base", "finetuned") for precision in settings.precisions]
    lines = [",".join(["dim", *(f"{SYSTEM_LABELS[m]} {p}" for m, p in columns)])]
    for dim in sorted(set(settings.dims)):
        lines.append(",".join([str(dim), *(f"{report[m][str(dim)][p][headline]:.6f}" for m, p in columns)]))
    return "\n".join(lines) + "\n"


def truncation_summary(report: dict, settings: TruncateEvalParams, headline: str) -> dict:
    """metrics/truncate.json: at the width you plan to ship, the fine-tuned model's retention of its full-width
    score in each precision, and its gain over the full-width base model (difference and 95% interval)."""
    if "finetuned" not in report:
        return {key: report[key] for key in ("test_queries", "judged_queries") if key in report}
    dim = settings.chosen_dim
    summary: dict = {"dim": dim, "finetuned_retention_pct": {
        precision: values[f"retention_{headline}_pct"] for precision, values in report["finetuned"][str(dim)].items()}}
    if "chosen_dim" in report:
        comparison = report["chosen_dim"]["finetuned_vs_base_full"]
        summary["finetuned_vs_base_full"] = {key: comparison[key] for key in ("difference", "ci_low", "ci_high")}
    return summary
