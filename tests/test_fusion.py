"""The weighted hybrid: score normalisation and fusion, the weight chosen on dev, the choice file, reranking, and
the system to ship with its one-line recommendation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedft.config.params import EvaluateParams
from embedft.core.errors import DataFileError
from embedft.evaluation.hybrid import read_hybrid_choice, tune_hybrid, weight_grid
from embedft.evaluation.shipping import best_on_dev, recommend_system, shipping_candidates, system_descriptions, uses_fine_tuning
from embedft.retrieval.fusion import normalise_scores, weighted_fusion
from embedft.retrieval.reranking import rerank

DENSE = {"q": {"a": 0.75, "b": 0.5, "c": 0.25}}
LEXICAL = {"q": {"c": 12.0, "d": 8.0, "a": 4.0}}


def test_min_max_maps_each_list_to_zero_one() -> None:
    assert normalise_scores({"a": 3.0, "b": 2.0, "c": 1.0}, "min_max") == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert normalise_scores({"a": 5.0, "b": 5.0}, "min_max") == {"a": 1.0, "b": 1.0}  # all tied: each is the best
    assert normalise_scores({}, "min_max") == {}


def test_z_score_has_mean_zero_and_unit_spread() -> None:
    scores = normalise_scores({"a": 3.0, "b": 2.0, "c": 1.0}, "z_score")
    assert sum(scores.values()) == pytest.approx(0.0)
    assert np.std(list(scores.values())) == pytest.approx(1.0)
    assert scores["a"] == pytest.approx(np.sqrt(1.5))
    assert normalise_scores({"a": 5.0, "b": 5.0}, "z_score") == {"a": 0.0, "b": 0.0}
    with pytest.raises(ValueError, match="unknown score normalisation 'rank'"):
        normalise_scores({"a": 1.0}, "rank")


def test_weighted_fusion_mixes_normalised_scores_and_fills_missing_documents_with_the_list_minimum() -> None:
    fused = weighted_fusion(DENSE, LEXICAL, 0.5, "min_max", top_k=10)["q"]
    # dense: a 1, b 0.5, c 0 ; BM25: c 1, d 0.5, a 0 ; b is missing from BM25 (0), d from dense (0)
    assert fused == pytest.approx({"a": 0.5, "c": 0.5, "b": 0.25, "d": 0.25})
    assert list(fused) == ["a", "c", "b", "d"]  # ties: the heavier (dense at 0.5) side's score first
    z = weighted_fusion(DENSE, LEXICAL, 0.5, "z_score", top_k=10)["q"]
    low = -np.sqrt(1.5)  # each list's lowest z-score stands in for a document that list did not retrieve
    assert z["b"] == pytest.approx(0.5 * 0.0 + 0.5 * low)
    assert z["d"] == pytest.approx(0.5 * low + 0.5 * 0.0)


def test_weight_one_is_the_dense_ranking_and_weight_zero_the_bm25_ranking() -> None:
    rng = np.random.default_rng(0)
    dense = {f"q{i}": {f"d{j}": float(rng.normal()) for j in rng.choice(30, 10, replace=False)} for i in range(5)}
    lexical = {f"q{i}": {f"d{j}": float(rng.uniform(0, 9)) for j in rng.choice(30, 10, replace=False)} for i in range(5)}
    for normalisation in ("min_max", "z_score"):
        ones, zeros = weighted_fusion(dense, lexical, 1.0, normalisation, 10), weighted_fusion(dense, lexical, 0.0, normalisation, 10)
        for q in dense:
            assert list(ones[q]) == sorted(dense[q], key=lambda d: -dense[q][d])
            assert list(zeros[q]) == sorted(lexical[q], key=lambda d: -lexical[q][d])


def test_fusion_keeps_top_k_and_handles_a_query_one_system_missed() -> None:
    fused = weighted_fusion(DENSE, {"q": {}}, 0.3, "min_max", top_k=2)
    assert list(fused["q"]) == ["a", "b"]
    assert weighted_fusion({}, LEXICAL, 0.7, "min_max", top_k=1) == {"q": {"c": pytest.approx(0.3)}}
    with pytest.raises(ValueError, match="0..1"):
        weighted_fusion(DENSE, LEXICAL, 1.5, "min_max", 3)


def test_weight_grid_covers_both_ends() -> None:
    assert weight_grid(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert weight_grid(0.3) == [0.0, 0.3, 0.6, 0.9, 1.0]
    assert len(weight_grid(0.05)) == 21


def toy_dev() -> tuple[dict, dict, dict]:
    """Three queries where the relevant document tops the fused list only for dense weights from 0.6 to 0.65.

    Each query ranks r (relevant), x and y. Dense scores (min-max normalised by construction) and BM25 scores
    were picked so that, with weight w, r beats x only while w < upper and beats y only while w > lower.
    """
    dense = {"q1": {"r": 0.8, "x": 1.0, "y": 0.0}, "q2": {"r": 0.5, "x": 1.0, "y": 0.0}, "q3": {"r": 0.9, "x": 1.0, "y": 0.0}}
    lexical = {"q1": {"r": 0.3, "x": 0.0, "y": 1.0}, "q2": {"r": 0.7, "x": 0.0, "y": 1.0}, "q3": {"r": 0.15, "x": 0.0, "y": 1.0}}
    qrels = {q: {"r": 1} for q in dense}
    return qrels, dense, lexical


def test_tune_hybrid_finds_the_weight_only_a_mix_gets_right() -> None:
    qrels, dense, lexical = toy_dev()
    # q1: r on top for 0.4667 < w < 0.6; q2: 0.375 < w < 0.583; q3: 0.4857 < w < 0.6296. All three: 0.4857 < w < 0.583.
    settings = EvaluateParams(hybrid_normalisation="min_max", hybrid_weight_step=0.05, hybrid_default_weight=0.0)
    choice = tune_hybrid(qrels, dense, lexical, settings, depth=3)
    assert choice["chosen_on"] == "dev" and choice["dev_queries"] == 3 and choice["normalisation"] == "min_max"
    assert choice["weight"] == 0.5 and choice["dev_score"] == pytest.approx(1.0)  # 0.5 and 0.55 tie: closest to default 0
    assert choice["candidates"]["min_max"]["0.55"] == pytest.approx(1.0) and choice["candidates"]["min_max"]["0.6"] < 1.0
    assert choice["candidates"]["min_max"]["0"] < 1.0 and choice["candidates"]["min_max"]["1"] < 1.0
    closer_to_one = tune_hybrid(qrels, dense, lexical, settings.model_copy(update={"hybrid_default_weight": 1.0}), depth=3)
    assert closer_to_one["weight"] == 0.55  # the same tie, now broken towards the other default
    both = tune_hybrid(qrels, dense, lexical, EvaluateParams(), depth=3)
    assert set(both["candidates"]) == {"min_max", "z_score"}
    assert both["dev_score"] == max(max(scores.values()) for scores in both["candidates"].values())


def test_tune_hybrid_without_dev_queries_falls_back_to_the_default(caplog) -> None:
    choice = tune_hybrid({}, {}, {}, EvaluateParams(hybrid_default_weight=0.3), depth=100)
    assert choice["weight"] == 0.3 and choice["normalisation"] == "min_max" and choice["chosen_on"].startswith("default")
    assert "no judged dev queries" in caplog.text


def test_read_hybrid_choice_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "hybrid.json"
    with pytest.raises(DataFileError, match=r"hybrid.json: the weighted hybrid's settings are missing; run `dvc repro tune_hybrid`"):
        read_hybrid_choice(path)
    path.write_text(json.dumps({"weight": 1.2, "normalisation": "min_max"}))
    with pytest.raises(DataFileError, match=r"hybrid.json: 'weight' must be a number from 0 to 1, got 1.2"):
        read_hybrid_choice(path)
    path.write_text(json.dumps({"weight": 0.4, "normalisation": "rank"}))
    with pytest.raises(DataFileError, match=r"'normalisation' must be one of min_max, z_score, got 'rank'"):
        read_hybrid_choice(path)
    path.write_text('{"weight": 0.4,\n')
    with pytest.raises(DataFileError, match=r"hybrid.json:2: not valid JSON"):
        read_hybrid_choice(path)
    path.write_text(json.dumps({"weight": 0.4, "normalisation": "z_score", "depth": 100}))
    assert read_hybrid_choice(path)["weight"] == 0.4


def test_rerank_reorders_the_top_k_and_keeps_the_rest_below() -> None:
    run = {"q": {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}}
    asked: list[list[tuple[str, str]]] = []

    def scorer(pairs):
        asked.append(pairs)
        return [{"A": 0.1, "B": 0.9, "C": 0.5}[doc] for _, doc in pairs]

    reranked = rerank(run, {"q": "query"}, {"a": "A", "b": "B", "c": "C", "d": "D"}, scorer, top_k=3)
    assert list(reranked["q"]) == ["b", "c", "a", "d"] and reranked["q"]["d"] == 1.0
    assert len(asked) == 1 and len(asked[0]) == 3  # one batch, only the top k


def test_shipping_order_and_kinds() -> None:
    names = ["hybrid", "zero_shot:bge", "finetuned", "bm25", "base", "reranked", "round1", "hybrid_rrf"]
    assert shipping_candidates(names) == ["bm25", "base", "zero_shot:bge", "finetuned", "hybrid_rrf", "hybrid", "reranked"]
    assert uses_fine_tuning("hybrid") and not uses_fine_tuning("zero_shot:bge")
    assert uses_fine_tuning("reranked", "hybrid") and not uses_fine_tuning("reranked", "bm25")
    assert best_on_dev({"bm25": 0.5, "hybrid": 0.5, "base": 0.4}, ["bm25", "base", "hybrid"]) == "bm25"  # a tie: the cheaper


def test_recommendation_is_chosen_on_dev_and_compared_with_the_best_other_kind_on_test() -> None:
    settings = EvaluateParams(bootstrap_resamples=500)
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 200)
    test = {"base": base, "bm25": base - 0.05, "finetuned": base + 0.04, "hybrid": base + 0.06, "hybrid_rrf": base + 0.05,
            "zero_shot:bge": base + 0.02 + rng.normal(0, 0.01, 200)}
    # On dev the hybrid wins; on test bge would look better than it does on dev, which must not matter.
    dev = {"base": 0.5, "bm25": 0.45, "finetuned": 0.55, "hybrid": 0.58, "hybrid_rrf": 0.56, "zero_shot:bge": 0.51}
    hybrid = {"weight": 0.7, "normalisation": "min_max"}
    descriptions = system_descriptions(list(test), hybrid, settings, None)
    shipped = recommend_system(dev, test, descriptions, settings, seed=0)
    assert shipped["system"] == "hybrid" and shipped["best_alternative"] == "zero_shot:bge" and shipped["fine_tuned"] == 1
    assert set(shipped) >= {"vs_base", "vs_finetuned", "vs_best_alternative"}
    assert shipped["vs_base"]["difference"] == pytest.approx(0.06) and shipped["vs_finetuned"]["difference"] == pytest.approx(0.02)
    line = shipped["line"]
    assert line.startswith("ship hybrid (fine-tuned + BM25, weight 0.7, min-max), the best of every system on dev: nDCG@10 ")
    assert "for the best not fine-tuned alternative, zero_shot:bge (bge, zero-shot): +0.04" in line and "95% CI" in line
    assert "within noise" not in line


def rng_noise(size: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.05, size)


def test_recommendation_of_an_alternative_and_without_dev() -> None:
    settings = EvaluateParams(bootstrap_resamples=500)
    flat = np.full(50, 0.5)
    test = {"base": flat, "bm25": flat + 0.1, "finetuned": flat, "hybrid": flat + 0.1, "hybrid_rrf": flat}
    dev = {"base": 0.5, "bm25": 0.6, "finetuned": 0.5, "hybrid": 0.6, "hybrid_rrf": 0.5}
    descriptions = system_descriptions(list(test), {"weight": 0.0, "normalisation": "z_score"}, settings, None)
    shipped = recommend_system(dev, test, descriptions, settings, seed=0)
    assert shipped["system"] == "bm25" and shipped["fine_tuned"] == 0  # tied on dev with the hybrid: the cheaper one
    assert shipped["best_alternative"] == "hybrid" and "for the best fine-tuned alternative, hybrid" in shipped["line"]
    assert "within noise on test, so hybrid serves about as well" in shipped["line"]
    # A hybrid that wins on dev but is within noise of the fine-tuned model alone on test says so.
    noisy = {**test, "finetuned": flat + 0.1 + rng_noise(50), "hybrid": flat + 0.1 + rng_noise(50, seed=2)}
    dev_hybrid = {**dev, "hybrid": 0.7, "finetuned": 0.65}
    close = recommend_system(dev_hybrid, noisy, descriptions, settings, seed=0)
    assert close["system"] == "hybrid" and close["vs_finetuned"]["ci_low"] <= 0 <= close["vs_finetuned"]["ci_high"]
    assert "over the fine-tuned model alone" in close["line"] and close["line"].endswith(
        "within noise, so the fine-tuned model alone serves about as well")
    none = recommend_system({}, test, descriptions, settings, seed=0)
    assert none["system"] is None and none["line"].startswith("no system recommended: there are no judged dev queries")
