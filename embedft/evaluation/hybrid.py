"""The weighted hybrid (fine-tuned model + BM25): its weight and normalisation chosen on dev, the small file
that records the choice (what `evaluate` scores on test and a search service reads), and reading it back."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from embedft.config import SCORE_NORMALISATIONS, Bm25Params, EvaluateParams
from embedft.core import DataFileError, Qrels
from embedft.evaluation.ir_metrics import mean_metrics, per_query_metrics
from embedft.retrieval import Run, weighted_fusion

logger = logging.getLogger(__name__)

def lexical_system(lexical: Bm25Params) -> str:
    """What the hybrid's lexical side is, as the choice file states it for a service that rebuilds it."""
    words = "every word kept" if lexical.language == "none" else f"'{lexical.language}' stop words removed"
    stems = ", Snowball stemmer" if lexical.stemmer else ""
    return f"bm25s BM25, {words}{stems}, default k1 and b, over title and text"
TIE_TOLERANCE = 1e-9


def weight_grid(step: float) -> list[float]:
    """The dense model's weights tried: 0, step, 2*step, ... and always 1."""
    count = int(round(1.0 / step, 9))
    weights = [round(i * step, 6) for i in range(count + 1) if i * step <= 1.0 + 1e-9]
    return weights if weights[-1] == 1.0 else [*weights, 1.0]


def weight_key(weight: float) -> str:
    """A weight as a JSON key: '0', '0.05', '1'."""
    return format(weight, ".6g")


def tune_hybrid(qrels: Qrels, dense: Run, lexical: Run, settings: EvaluateParams, depth: int,
                bm25: Bm25Params | None = None) -> dict:
    """Choose the dense weight and the normalisation that give the best mean headline metric on the dev queries.

    Every weight of :func:`weight_grid` is tried with each normalisation (both when ``hybrid_normalisation`` is
    'auto'). Ties (equal dev scores) go to the weight closest to ``hybrid_default_weight``, then to the
    normalisation listed first in :data:`SCORE_NORMALISATIONS`. Without judged dev queries nothing can be
    chosen: the default weight and the first normalisation are returned with ``chosen_on: 'default'``.

    Args:
        qrels: judgements of the dev queries (empty: fall back to the defaults).
        dense: the fine-tuned model's dev ranking, ``depth`` documents per query.
        lexical: BM25's dev ranking, over the same depth.
        settings: the ``evaluate`` params (headline metric, grid step, default weight, normalisation).
        depth: documents each system retrieves and the hybrid keeps.
        bm25: how ``lexical`` read the text (the ``bm25`` params; None: their defaults), recorded in the choice.

    Returns:
        the choice: weight, normalisation, depth, what it was chosen on, and the dev score of every candidate.
    """
    normalisations = list(SCORE_NORMALISATIONS) if settings.hybrid_normalisation == "auto" else [settings.hybrid_normalisation]
    choice = {"weight": settings.hybrid_default_weight, "normalisation": normalisations[0], "depth": depth,
              "weight_is_of": "the dense model; BM25 gets 1 - weight", "lexical": lexical_system(bm25 or Bm25Params()),
              "metric": settings.headline}
    if not qrels:
        logger.warning("no judged dev queries: the hybrid uses the default weight %s with %s normalisation",
                       settings.hybrid_default_weight, normalisations[0])
        return {**choice, "chosen_on": "default (no judged dev queries)", "dev_queries": 0, "dev_score": None, "candidates": {}}
    candidates: dict[str, dict[str, float]] = {}
    best: tuple[float, float, int] | None = None
    for rank, normalisation in enumerate(normalisations):
        candidates[normalisation] = {}
        for weight in weight_grid(settings.hybrid_weight_step):
            fused = weighted_fusion(dense, lexical, weight, normalisation, depth)
            score = mean_metrics(per_query_metrics(qrels, fused, (headline_measure(settings),)))[settings.headline]
            candidates[normalisation][weight_key(weight)] = score
            key = (score, -abs(weight - settings.hybrid_default_weight), -rank)
            if best is None or key[0] > best[0] + TIE_TOLERANCE or (abs(key[0] - best[0]) <= TIE_TOLERANCE and key[1:] > best[1:]):
                best = key
                choice.update(weight=weight, normalisation=normalisation)
    return {**choice, "chosen_on": "dev", "dev_queries": len(qrels), "dev_score": best[0] if best else None,
            "candidates": candidates}


def headline_measure(settings: EvaluateParams) -> str:
    """The ir-measures name of the headline metric, e.g. 'nDCG@10'."""
    return f"nDCG@{settings.ndcg_at[0]}"


def read_hybrid_choice(path: Path) -> dict:
    """Read a choice written by `tune_hybrid`, checking the fields a ranker needs (weight, normalisation, depth)."""
    if not path.is_file():
        raise DataFileError(path, "the weighted hybrid's settings are missing; run `dvc repro tune_hybrid`, which chooses them on dev")
    try:
        choice = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFileError(path, f"not valid JSON ({error.msg})", error.lineno) from None
    if not isinstance(choice, dict):
        raise DataFileError(path, "expected a JSON object with 'weight' and 'normalisation'")
    weight, normalisation = choice.get("weight"), choice.get("normalisation")
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0.0 <= weight <= 1.0:
        raise DataFileError(path, f"'weight' must be a number from 0 to 1, got {weight!r}")
    if normalisation not in SCORE_NORMALISATIONS:
        raise DataFileError(path, f"'normalisation' must be one of {', '.join(SCORE_NORMALISATIONS)}, got {normalisation!r}")
    return choice


def describe_hybrid(choice: dict) -> str:
    """'fine-tuned + BM25, weight 0.7, min-max' (how the verdict line names the hybrid)."""
    return f"fine-tuned + BM25, weight {weight_key(choice['weight'])}, {choice['normalisation'].replace('_', '-')}"
