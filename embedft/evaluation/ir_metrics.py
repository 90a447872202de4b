"""IR metrics computed by ir-measures (trec_eval semantics, graded relevance for nDCG)."""

from __future__ import annotations

import ir_measures

from embedft.core import Qrels
from embedft.retrieval import Run

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "AP@100", "R@1", "R@10", "R@100", "P@10")
FRIENDLY_NAMES = {"nDCG": "ndcg", "RR": "mrr", "AP": "map", "R": "recall", "P": "precision"}


def metric_key(measure: str) -> str:
    """The name a measure gets in metrics files, e.g. 'RR@10' -> 'mrr@10'."""
    name, _, cutoff = measure.partition("@")
    return f"{FRIENDLY_NAMES.get(name, name.lower())}@{cutoff}" if cutoff else FRIENDLY_NAMES.get(name, name.lower())


def per_query_metrics(qrels: Qrels, run: Run, measures: tuple[str, ...] = DEFAULT_MEASURES) -> dict[str, dict[str, float]]:
    """Each judged query's value for each measure; a query the run misses scores 0 everywhere."""
    parsed = {ir_measures.parse_measure(m): metric_key(m) for m in measures}
    results = {query_id: {key: 0.0 for key in parsed.values()} for query_id in qrels}
    judged_run = {q: docs for q, docs in run.items() if q in qrels}
    for metric in ir_measures.iter_calc(list(parsed), qrels, judged_run):
        results[metric.query_id][parsed[metric.measure]] = float(metric.value)
    return results


def mean_metrics(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """Average each measure over queries (rounded to 6 places so metrics files diff cleanly)."""
    if not per_query:
        return {}
    keys = next(iter(per_query.values())).keys()
    return {key: round(sum(row[key] for row in per_query.values()) / len(per_query), 6) for key in keys}


def metric_deltas(new: dict[str, float], old: dict[str, float]) -> dict[str, float]:
    """``new - old`` for each measure both have."""
    return {key: round(new[key] - old[key], 6) for key in new if key in old}
