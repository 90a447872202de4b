"""Measuring retrieval: IR metrics (ir-measures), paired statistics, the systems compared and the verdict,
train/test leakage, forgetting out of domain, and Matryoshka truncation with quantization."""

from embedft.evaluation.forgetting import forgetting_report
from embedft.evaluation.ir_metrics import mean_metrics, metric_deltas, metric_key, per_query_metrics
from embedft.evaluation.leakage import count_leaks
from embedft.evaluation.quantization import quantized_pair
from embedft.evaluation.statistics import compare_systems
from embedft.evaluation.systems import (
    COMPARISONS,
    evaluation_report,
    evaluation_summary,
    per_query_table,
    recall_curve,
    retrieval_depth,
    system_agreement,
    system_runs,
)
from embedft.evaluation.truncation import plot_table, truncation_grid, truncation_summary
from embedft.evaluation.verdict import decide_verdict, verdict_banner

__all__ = ["COMPARISONS", "compare_systems", "count_leaks", "decide_verdict", "evaluation_report",
           "evaluation_summary", "forgetting_report", "mean_metrics", "metric_deltas", "metric_key",
           "per_query_metrics", "per_query_table", "plot_table", "verdict_banner", "quantized_pair",
           "recall_curve", "retrieval_depth", "system_agreement", "system_runs", "truncation_grid",
           "truncation_summary"]
