"""Measuring retrieval: IR metrics (ir-measures), paired statistics, the systems compared, the weighted hybrid's
weight chosen on dev, the system to ship and the verdict, train/test leakage, forgetting out of domain, and
Matryoshka truncation with quantization."""

from embedft.evaluation.forgetting import forgetting_report
from embedft.evaluation.hybrid import read_hybrid_choice, tune_hybrid, weight_grid
from embedft.evaluation.ir_metrics import mean_metrics, metric_deltas, metric_key, per_query_metrics
from embedft.evaluation.leakage import count_leaks
from embedft.evaluation.quantization import quantized_pair
from embedft.evaluation.reranking import add_reranked, dev_headline_scores
from embedft.evaluation.shipping import best_on_dev, recommend_system, shipping_candidates, system_descriptions, uses_fine_tuning
from embedft.evaluation.statistics import compare_systems
from embedft.evaluation.systems import (
    COMPARISONS,
    evaluation_report,
    evaluation_summary,
    headline_scores,
    per_query_table,
    recall_curve,
    retrieval_depth,
    system_agreement,
    system_runs,
)
from embedft.evaluation.truncation import plot_table, truncation_grid, truncation_summary
from embedft.evaluation.verdict import decide_verdict, verdict_banner

__all__ = [
    "COMPARISONS", "add_reranked", "best_on_dev", "compare_systems", "count_leaks", "decide_verdict",
    "dev_headline_scores", "evaluation_report", "evaluation_summary", "forgetting_report", "headline_scores",
    "mean_metrics", "metric_deltas", "metric_key", "per_query_metrics", "per_query_table", "plot_table",
    "quantized_pair", "read_hybrid_choice", "recall_curve", "recommend_system", "retrieval_depth",
    "shipping_candidates", "system_agreement", "system_descriptions", "system_runs", "truncation_grid",
    "truncation_summary", "tune_hybrid", "uses_fine_tuning", "verdict_banner", "weight_grid"
]
