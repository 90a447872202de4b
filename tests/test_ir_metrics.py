"""IR metrics: hand-computed values, missing queries, names, and agreement with sentence-transformers' evaluator."""

from __future__ import annotations

import math

import pytest

from embedft.core.beir import read_corpus, read_qrels, read_queries
from embedft.encoding.encoder import encode
from embedft.encoding.store import StoredEmbeddings
from embedft.evaluation.ir_metrics import DEFAULT_MEASURES, mean_metrics, metric_deltas, metric_key, per_query_metrics
from embedft.retrieval.runs import rank_corpus


@pytest.mark.parametrize(
    "measure, key",
    [
        ("RR@10", "mrr@10"),
        ("nDCG@10", "ndcg@10"),
        ("AP@100", "map@100"),
        ("R@1", "recall@1"),
        ("R@100", "recall@100"),
        ("P@10", "precision@10"),
        ("AP", "map"),
        ("Judged@10", "judged@10"),
    ],
)
def test_metric_key(measure, key):
    assert metric_key(measure) == key


def dcg(gains: list[float]) -> float:
    """DCG with linear gain (trec_eval's ndcg_cut): sum of rel_i / log2(i + 1) over 1-based ranks."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


# q1: relevance 2 for "a", 1 for "b" and "z" (never retrieved), 0 for "n".
# The run puts x, a, n, b at ranks 1-4, so relevant hits are at ranks 2 (rel 2) and 4 (rel 1).
QRELS = {"q1": {"a": 2, "b": 1, "z": 1, "n": 0}, "q2": {"c": 1}, "q3": {"e": 1}}
RUN = {
    "q1": {"x": 0.9, "a": 0.8, "n": 0.7, "b": 0.6},
    "q3": {"e": 0.5, "f": 0.4},
    "q-unjudged": {"c": 1.0},  # not in the qrels: ignored
}


def test_per_query_hand_computed():
    results = per_query_metrics(QRELS, RUN)
    assert set(results) == {"q1", "q2", "q3"}
    q1 = results["q1"]
    expected_ndcg = dcg([0, 2, 0, 1]) / dcg([2, 1, 1])
    assert q1["ndcg@10"] == pytest.approx(expected_ndcg, abs=1e-9)
    assert q1["mrr@10"] == pytest.approx(1 / 2)
    assert q1["recall@1"] == 0.0
    assert q1["recall@10"] == pytest.approx(2 / 3)
    assert q1["recall@100"] == pytest.approx(2 / 3)
    assert q1["precision@10"] == pytest.approx(2 / 10)
    assert q1["map@100"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    q3 = results["q3"]
    assert q3 == {"ndcg@10": 1.0, "mrr@10": 1.0, "map@100": 1.0, "recall@1": 1.0, "recall@10": 1.0, "recall@100": 1.0,
                  "precision@10": pytest.approx(0.1)}


def test_query_missing_from_run_scores_zero():
    results = per_query_metrics(QRELS, RUN)
    assert results["q2"] == {metric_key(m): 0.0 for m in DEFAULT_MEASURES}


def test_mean_metrics_averages_over_all_judged_queries():
    results = per_query_metrics(QRELS, RUN)
    means = mean_metrics(results)
    assert list(means) == [metric_key(m) for m in DEFAULT_MEASURES]
    expected_ndcg = (dcg([0, 2, 0, 1]) / dcg([2, 1, 1]) + 0 + 1) / 3
    assert means["ndcg@10"] == pytest.approx(round(expected_ndcg, 6), abs=1e-12)
    assert means["mrr@10"] == pytest.approx(round((0.5 + 0 + 1) / 3, 6), abs=1e-12)
    assert means["recall@1"] == pytest.approx(round(1 / 3, 6), abs=1e-12)
    assert means["precision@10"] == pytest.approx(0.1)
    assert mean_metrics({}) == {}


def test_cutoff_excludes_hits_below_it():
    run = {"q": {f"d{i}": 100.0 - i for i in range(20)}}
    qrels = {"q": {"d12": 1}}
    results = per_query_metrics(qrels, run, measures=("nDCG@10", "RR@10", "R@10", "R@100", "P@10"))["q"]
    assert results == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "recall@100": 1.0, "precision@10": 0.0}


def test_custom_measures():
    results = per_query_metrics({"q": {"a": 1}}, {"q": {"b": 2.0, "a": 1.0}}, measures=("RR@10", "nDCG@3"))
    assert results == {"q": {"mrr@10": 0.5, "ndcg@3": pytest.approx(1 / math.log2(3))}}


def test_metric_deltas():
    assert metric_deltas({"a": 0.5, "b": 0.25, "c": 1.0}, {"a": 0.2, "b": 0.5}) == {"a": 0.3, "b": -0.25}


def test_agrees_with_sentence_transformers_evaluator(tiny_model_path, tiny_dataset):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    corpus = read_corpus(tiny_dataset / "corpus.jsonl")
    queries = read_queries(tiny_dataset / "queries.jsonl")
    qrels = read_qrels(tiny_dataset / "qrels.tsv", queries, corpus)
    doc_ids = list(corpus)
    doc_texts = [corpus[d].full_text for d in doc_ids]
    query_ids = sorted(queries)

    stored = StoredEmbeddings(vectors=encode(model, doc_texts, progress=False), doc_ids=doc_ids, info={})
    query_vectors = encode(model, [queries[q] for q in query_ids], progress=False)
    run = rank_corpus(query_ids, query_vectors, stored, top_k=100, chunk_size=5)
    ours = mean_metrics(per_query_metrics(qrels, run))

    evaluator = InformationRetrievalEvaluator(
        queries=queries,
        corpus=dict(zip(doc_ids, doc_texts)),
        relevant_docs={q: {d for d, s in docs.items() if s > 0} for q, docs in qrels.items()},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        precision_recall_at_k=[1, 10],
        map_at_k=[100],
        write_csv=False,
    )
    theirs = evaluator(model)
    prefix = next(k for k in theirs if k.endswith("ndcg@10")).removesuffix("ndcg@10")
    for key in ("ndcg@10", "mrr@10", "recall@10", "map@100", "recall@1", "precision@10"):
        assert ours[key] == pytest.approx(theirs[prefix + key], abs=1e-4), key
    # The comparison is not vacuous: the tiny random model is neither perfect nor useless.
    assert 0.0 < ours["ndcg@10"] < 1.0
