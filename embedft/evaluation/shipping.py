"""Which system to ship: the best on dev among every system scored (never chosen on test), then measured on test
against the base model, the fine-tuned model alone and the best system of the other kind (fine-tuned or not)."""

from __future__ import annotations

import numpy as np

from embedft.config import CANDIDATE_PREFIX, FINE_TUNED_SYSTEMS, SYSTEMS, EvaluateParams
from embedft.evaluation.hybrid import describe_hybrid
from embedft.evaluation.statistics import compare_systems

SHIP_PREFERENCE = ("bm25", "base", CANDIDATE_PREFIX, "finetuned", "hybrid_rrf", "hybrid", "concatenated", "reranked")
"""Cheapest to serve first: a tie on dev goes to the earlier system (candidate models in the order listed)."""
COMPARED = ("difference", "ci_low", "ci_high", "p_value")


def shipping_candidates(names: list[str]) -> list[str]:
    """The systems one could ship, in :data:`SHIP_PREFERENCE` order (earlier rounds and other runs left out)."""
    ordered = []
    for kind in SHIP_PREFERENCE:
        ordered += [n for n in names if n.startswith(kind)] if kind == CANDIDATE_PREFIX else [n for n in names if n == kind]
    return ordered


def uses_fine_tuning(name: str, reranked_of: str | None = None) -> bool:
    """True for the systems built on the fine-tuned model (a reranking counts as the system it reranks)."""
    return uses_fine_tuning(reranked_of) if name == "reranked" and reranked_of else name in FINE_TUNED_SYSTEMS


def best_on_dev(dev_scores: dict[str, float], names: list[str]) -> str | None:
    """The name with the highest dev score; ties go to the earlier name."""
    best = None
    for name in names:
        if best is None or dev_scores[name] > dev_scores[best] + 1e-9:
            best = name
    return best


def system_descriptions(names: list[str], hybrid: dict, settings: EvaluateParams, reranked_of: str | None) -> dict[str, str]:
    """A short phrase per system for the verdict line, e.g. 'fine-tuned + BM25, weight 0.7, min-max'."""
    fixed = {"base": "base model, zero-shot", "finetuned": "fine-tuned model alone", "bm25": "BM25",
             "hybrid": describe_hybrid(hybrid), "hybrid_rrf": "fine-tuned + BM25, reciprocal rank fusion",
             "concatenated": "base and fine-tuned embeddings concatenated",
             "reranked": f"cross-encoder {settings.rerank_cross_encoder} reranking {reranked_of}'s top {settings.rerank_top_k}"}
    return {name: fixed.get(name) or (f"{name.removeprefix(CANDIDATE_PREFIX)}, zero-shot" if name.startswith(CANDIDATE_PREFIX)
                                      else SYSTEMS.get(name, name)) for name in names}


def recommend_system(dev_scores: dict[str, float], test_scores: dict[str, np.ndarray], descriptions: dict[str, str],
                     settings: EvaluateParams, seed: int, reranked_of: str | None = None) -> dict:
    """The system to ship, chosen on dev, with its test score compared (paired bootstrap, randomisation test).

    Args:
        dev_scores: each system's mean headline metric on the dev queries (empty: no recommendation).
        test_scores: each system's per-query headline metric on test, all in the same query order.
        descriptions: a phrase per system (:func:`system_descriptions`).
        settings: the ``evaluate`` params (headline, bootstrap resamples).
        seed: seeds the resampling.
        reranked_of: the system the cross-encoder reranked, if any.

    Returns:
        the shipped system, the best alternative (the best on dev of the other kind: not fine-tuned when the
        shipped system is, fine-tuned when it is not), their dev and test scores, the comparisons of the shipped
        system with base, the fine-tuned model and that alternative, and the one-line recommendation.
    """
    headline = settings.headline
    names = shipping_candidates([n for n in test_scores if n in dev_scores])
    shipped = best_on_dev(dev_scores, names)
    if shipped is None:
        return {"system": None, "line": "no system recommended: there are no judged dev queries to choose on without "
                                        "looking at test (add dev queries, or set split.dev_fraction above 0)"}
    fine_tuned = uses_fine_tuning(shipped, reranked_of)
    alternative = best_on_dev(dev_scores, [n for n in names if uses_fine_tuning(n, reranked_of) != fine_tuned])
    report = {"system": shipped, "description": descriptions[shipped], "fine_tuned": int(fine_tuned), "chosen_on": "dev",
              f"dev_{headline}": dev_scores[shipped], f"test_{headline}": round(float(test_scores[shipped].mean()), 6),
              "best_alternative": alternative, "best_alternative_description": descriptions.get(alternative, ""),
              f"best_alternative_dev_{headline}": dev_scores.get(alternative),
              f"best_alternative_test_{headline}": round(float(test_scores[alternative].mean()), 6) if alternative else None}
    for label, other in (("vs_base", "base"), ("vs_finetuned", "finetuned"), ("vs_best_alternative", alternative)):
        if other and other != shipped:
            report[label] = compare_systems(test_scores[shipped], test_scores[other], settings.bootstrap_resamples, seed)
    report["line"] = recommendation_line(report, headline)
    return report


def recommendation_line(report: dict, headline: str) -> str:
    """'ship hybrid (fine-tuned + BM25, weight 0.7, min-max): nDCG@10 0.7200 vs 0.6900 for the best alternative ...'."""
    label = headline.replace("ndcg", "nDCG")
    line = (f"ship {report['system']} ({report['description']}), the best of every system on dev: "
            f"{label} {report[f'test_{headline}']:.4f} on test")
    comparison = report.get("vs_best_alternative")
    if not comparison:
        return line
    kind = "not fine-tuned" if report["fine_tuned"] else "fine-tuned"
    line += (f" vs {report[f'best_alternative_test_{headline}']:.4f} for the best {kind} alternative, {report['best_alternative']} "
             f"({report['best_alternative_description']}): {comparison['difference']:+.4f} (95% CI {comparison['ci_low']:+.4f} .. "
             f"{comparison['ci_high']:+.4f}, p = {comparison['p_value']:.4f})")
    if comparison["ci_high"] < 0.0:
        line += f"; significantly worse on test, so the choice made on dev did not hold: consider {report['best_alternative']}"
    elif comparison["ci_low"] <= 0.0:
        line += f"; within noise on test, so {report['best_alternative']} serves about as well"
    alone = report.get("vs_finetuned")
    if alone and report["system"] != "finetuned" and report["fine_tuned"] and alone["ci_low"] <= 0.0 <= alone["ci_high"]:
        # The reviewer's next question: is the extra machinery (BM25 index, reranker) worth running?
        line += (f"; over the fine-tuned model alone {alone['difference']:+.4f} (95% CI {alone['ci_low']:+.4f} .. "
                 f"{alone['ci_high']:+.4f}), within noise, so the fine-tuned model alone serves about as well")
    return line
