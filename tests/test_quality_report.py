"""Evaluation helpers: quantization, leakage counts, verdicts, recall curves and the truncation grid."""

from __future__ import annotations

import numpy as np
import pytest

from embedft.config.params import EvaluateParams, TruncateEvalParams
from embedft.encoding.store import StoredEmbeddings
from embedft.evaluation.leakage import count_leaks
from embedft.evaluation.quantization import quantized_pair
from embedft.evaluation.systems import recall_curve, retrieval_depth
from embedft.evaluation.truncation import truncation_grid
from embedft.evaluation.verdict import decide_verdict
from embedft.retrieval.exact import exact_search, normalise_rows


def unit(rows: np.ndarray) -> np.ndarray:
    return normalise_rows(rows.astype(np.float32))


def test_quantized_pair_sizes_and_types():
    rng = np.random.default_rng(0)
    corpus, queries = unit(rng.normal(size=(40, 16))), unit(rng.normal(size=(3, 16)))
    sizes = {}
    for precision in ("float32", "int8", "binary"):
        c, q, size = quantized_pair(corpus, queries, precision)
        assert c.dtype == np.float32 and c.shape == corpus.shape and q.shape == queries.shape
        sizes[precision] = size
    assert sizes == {"float32": 64, "int8": 16, "binary": 2}
    c, q, _ = quantized_pair(corpus, queries, "binary")
    assert set(np.unique(c)) <= {-1.0, 1.0}
    assert np.array_equal(c, np.where(corpus > 0, 1.0, -1.0))
    with pytest.raises(ValueError):
        quantized_pair(corpus, queries, "int4")


def test_int8_ranking_close_to_float32():
    rng = np.random.default_rng(1)
    corpus, queries = unit(rng.normal(size=(500, 64))), unit(rng.normal(size=(20, 64)))
    c, q, _ = quantized_pair(corpus, queries, "int8")
    exact, _ = exact_search(queries, corpus, 1)
    approx, _ = exact_search(q, c, 1)
    assert np.mean(exact[:, 0] == approx[:, 0]) >= 0.8


def test_count_leaks_exact_normalised_and_near():
    test = {"t1": "Parse JSON text", "t2": "parse   json TEXT", "t3": "open a zip file", "t4": "something new"}
    anchors = ["Parse JSON text", "open a zip archive"]
    test_vectors = unit(np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0.01], [0, 0, 1]]))
    anchor_vectors = unit(np.array([[1, 0, 0], [0, 1, 0]]))
    counts, leaked = count_leaks(test, anchors, test_vectors, anchor_vectors, similarity=0.95)
    assert counts == {"exact": 1, "normalised": 2, "near_duplicate": 3}
    assert leaked == ["t1", "t2", "t3"]


def test_verdicts():
    settings = EvaluateParams()
    ship = {"difference": 0.05, "ci_low": 0.01, "ci_high": 0.09}
    marginal = {"difference": 0.01, "ci_low": -0.01, "ci_high": 0.03}
    regression = {"difference": -0.02, "ci_low": -0.04, "ci_high": 0.0}
    assert decide_verdict(ship, 0.5, settings) == {"verdict": "ship", "relative_gain": 0.1, "suspected_leak": 0}
    assert decide_verdict(marginal, 0.5, settings)["verdict"] == "marginal"
    assert decide_verdict(regression, 0.5, settings)["verdict"] == "regression"
    tiny_drop = {"difference": -0.001, "ci_low": -0.02, "ci_high": 0.018}
    assert decide_verdict(tiny_drop, 0.5, settings)["verdict"] == "marginal"
    significant_small_drop = {"difference": -0.004, "ci_low": -0.007, "ci_high": -0.001}
    assert decide_verdict(significant_small_drop, 0.5, settings)["verdict"] == "regression"
    assert decide_verdict({"difference": 0.3, "ci_low": 0.2, "ci_high": 0.4}, 0.4, settings)["suspected_leak"] == 1
    strict = EvaluateParams(ship_min_ci_low=0.02)
    assert decide_verdict(ship, 0.5, strict)["verdict"] == "marginal"


def test_retrieval_depth_clipped_with_warning(caplog):
    settings = EvaluateParams(recall_at=[1, 10, 1000])
    assert retrieval_depth(settings, 50) == 50
    assert "exceeds the corpus (50 documents)" in caplog.text
    assert retrieval_depth(settings, 5000) == 1000


def test_recall_curve_columns_and_values():
    qrels = {"q1": {"a": 1, "b": 1}}
    runs = {"finetuned": {"q1": {"a": 3.0, "c": 2.0, "b": 1.0}}, "y": {"q1": {"c": 3.0, "a": 2.0, "b": 1.0}}}
    lines = recall_curve(qrels, runs, depth=3).splitlines()
    assert lines[0] == "k,fine-tuned,y"  # named as the chart's legend shows them
    assert lines[1] == "1,0.500000,0.000000"
    assert lines[3] == "3,1.000000,1.000000"


def test_truncation_grid_retention_and_bytes():
    rng = np.random.default_rng(2)
    corpus = unit(rng.normal(size=(30, 8)))
    ids = [f"d{i}" for i in range(30)]
    queries = unit(corpus[:5] + 0.05 * rng.normal(size=(5, 8)))
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(5)}
    settings = TruncateEvalParams(dims=[8, 4], precisions=["float32", "binary"])
    cells, per_query = truncation_grid([f"q{i}" for i in range(5)], queries, StoredEmbeddings(corpus, ids, {}), qrels,
                                       settings, EvaluateParams(), chunk_size=7)
    assert set(cells) == {"8", "4"} and set(cells["8"]) == {"float32", "binary"}
    assert cells["8"]["float32"]["retention_ndcg@10_pct"] == 100.0
    assert cells["8"]["float32"]["bytes_per_vector"] == 32 and cells["4"]["binary"]["bytes_per_vector"] == 1
    assert cells["8"]["float32"]["ndcg@10"] == pytest.approx(1.0)
    assert set(per_query) == {(8, "float32"), (8, "binary"), (4, "float32"), (4, "binary")}


def test_system_agreement_top_k_overlap():
    from embedft.evaluation.systems import system_agreement

    runs = {
        "base": {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"a": 1.0}},
        "finetuned": {"q1": {"a": 3.0, "c": 2.0, "d": 1.0}, "q2": {"a": 1.0}},
        "bm25": {"q1": {"x": 1.0}, "q2": {}},
    }
    agreement = system_agreement(runs, k=2)
    assert agreement == {"base_vs_finetuned": pytest.approx((0.5 + 0.5) / 2), "base_vs_bm25": 0.0, "finetuned_vs_bm25": 0.0}
