"""The verdict on a fine-tuned model, and the loud banner for a regression or a gain that looks leaked."""

from __future__ import annotations

from embedft.config import EvaluateParams


def decide_verdict(comparison: dict, base_score: float, settings: EvaluateParams) -> dict:
    """The verdict on the fine-tuned model's gain over base.

    'regression' when it is significantly worse (the whole 95% interval below zero) or worse by more than
    ``regression_tolerance``; 'ship' when the interval's lower bound clears ``ship_min_ci_low``; else 'marginal'.
    """
    if comparison["ci_high"] < 0 or comparison["difference"] < -settings.regression_tolerance:
        verdict = "regression"
    elif comparison["ci_low"] > settings.ship_min_ci_low:
        verdict = "ship"
    else:
        verdict = "marginal"
    relative = comparison["difference"] / base_score if base_score > 0 else 0.0
    return {"verdict": verdict, "relative_gain": round(relative, 6), "suspected_leak": int(relative > settings.leak_relative_gain)}


def verdict_banner(report: dict, headline: str) -> str:
    """The loud lines to print after a regression or a suspiciously large gain ('' when there is neither)."""
    lines = []
    if report.get("verdict") == "regression":
        lines += ["!" * 78, f"!! REGRESSION: the fine-tuned model is WORSE than the base model on {headline}.", "!" * 78]
    if report.get("suspected_leak"):
        lines.append(f"!! WARNING: a {report['relative_gain']:.0%} relative gain is suspicious: check test queries are not in training.")
    return "\n".join(lines)
