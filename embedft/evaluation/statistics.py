"""Paired significance statistics over per-query scores: bootstrap interval, randomisation test, win/tie/loss."""

from __future__ import annotations

import numpy as np


def paired_bootstrap_interval(
    differences: np.ndarray, resamples: int, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query differences (queries resampled with replacement)."""
    if differences.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, differences.size, size=(resamples, differences.size))
    means = differences[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def randomisation_p_value(differences: np.ndarray, resamples: int, seed: int) -> float:
    """Two-sided paired randomisation (sign-flip) test of a zero mean difference.

    Each resample flips the sign of every query's difference at random; the p-value is the share of
    resamples whose absolute mean is at least the observed one (with the +1 correction, so never 0).
    """
    if differences.size == 0 or not np.any(differences):
        return 1.0
    rng = np.random.default_rng(seed)
    observed = abs(differences.mean())
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, differences.size))
    extreme = np.count_nonzero(np.abs((signs * differences).mean(axis=1)) >= observed - 1e-12)
    return float((extreme + 1) / (resamples + 1))


def win_tie_loss(differences: np.ndarray, tolerance: float = 1e-9) -> dict[str, int]:
    """How many queries the first system wins, ties and loses."""
    return {
        "wins": int(np.count_nonzero(differences > tolerance)),
        "ties": int(np.count_nonzero(np.abs(differences) <= tolerance)),
        "losses": int(np.count_nonzero(differences < -tolerance)),
    }


def compare_systems(new: np.ndarray, old: np.ndarray, resamples: int, seed: int) -> dict[str, float | int]:
    """Paired comparison of two systems' per-query scores (same query order): mean difference, 95% CI, p, W/T/L."""
    differences = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    low, high = paired_bootstrap_interval(differences, resamples, seed)
    return {
        "difference": round(float(differences.mean()) if differences.size else 0.0, 6),
        "ci_low": round(low, 6),
        "ci_high": round(high, 6),
        "p_value": round(randomisation_p_value(differences, resamples, seed), 6),
        **win_tie_loss(differences),
    }
