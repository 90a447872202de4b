"""Exact chunked search, run construction, fusion, truncated ranking, stored embeddings and encoding."""

from __future__ import annotations

import numpy as np
import pytest

from stages.retrieval import (
    StoredEmbeddings,
    encode,
    exact_search,
    load_embeddings,
    normalise_rows,
    rank_corpus,
    reciprocal_rank_fusion,
    save_embeddings,
    to_run,
)


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_path), device="cpu")


def brute_force(queries: np.ndarray, corpus: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries.astype(np.float64) @ corpus.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("chunk_size", [7, 1, 50, 10_000])
@pytest.mark.parametrize("top_k", [1, 5, 20])
def test_exact_search_matches_brute_force(chunk_size, top_k):
    rng = np.random.default_rng(1234)
    queries = normalise_rows(rng.normal(size=(9, 16))).astype(np.float32)
    corpus = normalise_rows(rng.normal(size=(50, 16))).astype(np.float32)
    indices, scores = exact_search(queries, corpus, top_k, chunk_size)
    expected_indices, expected_scores = brute_force(queries, corpus, top_k)
    assert indices.shape == scores.shape == (9, top_k)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(7)
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    corpus = rng.normal(size=(31, 8)).astype(np.float32)
    whole = exact_search(queries, corpus, 10, chunk_size=1000)
    chunked = exact_search(queries, corpus, 10, chunk_size=7)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1], chunked[1], atol=1e-6)


def test_ties_across_chunks_broken_by_lower_index():
    corpus = np.zeros((10, 2), dtype=np.float32)
    corpus[:, 1] = np.linspace(0.1, 0.5, 10)  # distinct, lower scores
    corpus[[8, 2, 5]] = [1.0, 0.0]  # three identical best rows in three different chunks
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    for chunk_size in (4, 3, 10):
        indices, scores = exact_search(query, corpus, 3, chunk_size)
        assert indices.tolist() == [[2, 5, 8]]
        assert scores.tolist() == [[1.0, 1.0, 1.0]]


def test_all_tied_keeps_lowest_indices():
    corpus = np.ones((20, 3), dtype=np.float32)
    query = np.ones((1, 3), dtype=np.float32)
    for chunk_size in (20, 7, 3):
        assert exact_search(query, corpus, 4, chunk_size)[0].tolist() == [[0, 1, 2, 3]]


@pytest.mark.parametrize("chunk_size", [4, 50_000])
def test_tie_at_cutoff_broken_by_lower_index(chunk_size):
    corpus = np.array([[0.0], [0.0], [1.0], [1.0]], dtype=np.float32)
    query = np.array([[1.0]], dtype=np.float32)
    indices, _ = exact_search(query, corpus, 1, chunk_size)
    assert indices.tolist() == [[2]]


def test_top_k_larger_than_corpus():
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(2, 4)).astype(np.float32)
    corpus = rng.normal(size=(5, 4)).astype(np.float32)
    indices, scores = exact_search(queries, corpus, 100, chunk_size=2)
    assert indices.shape == scores.shape == (2, 5)
    for row in indices:
        assert sorted(row.tolist()) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(indices, brute_force(queries, corpus, 5)[0])


def test_empty_corpus():
    indices, scores = exact_search(np.ones((2, 3), dtype=np.float32), np.zeros((0, 3), dtype=np.float32), 10)
    assert indices.shape == scores.shape == (2, 0)


def test_to_run():
    run = to_run(["qa", "qb"], ["d0", "d1", "d2"], np.array([[2, 0], [1, 2]]), np.array([[0.9, 0.5], [0.7, 0.1]]))
    assert run == {"qa": {"d2": 0.9, "d0": 0.5}, "qb": {"d1": 0.7, "d2": 0.1}}
    assert all(isinstance(v, float) for docs in run.values() for v in docs.values())


def test_reciprocal_rank_fusion_exact_scores():
    run_a = {"q1": {"x": 0.9, "y": 0.8, "z": 0.1}, "q2": {"m": 5.0}}
    run_b = {"q1": {"y": 10.0, "w": 3.0, "x": 1.0}}
    fused = reciprocal_rank_fusion([run_a, run_b], top_k=10)
    assert set(fused) == {"q1", "q2"}
    expected_q1 = {
        "y": 1 / 62 + 1 / 61,
        "x": 1 / 61 + 1 / 63,
        "w": 1 / 62,
        "z": 1 / 63,
    }
    assert list(fused["q1"]) == ["y", "x", "w", "z"]
    for doc, score in expected_q1.items():
        assert fused["q1"][doc] == pytest.approx(score, abs=1e-15)
    assert fused["q2"] == {"m": pytest.approx(1 / 61)}


def test_reciprocal_rank_fusion_top_k_k_and_ties():
    # Within a run, equal scores are ranked by document id; equal fused scores are ordered by id too.
    run_a = {"q": {"b": 1.0, "a": 1.0}}
    run_b = {"q": {"a": 2.0, "b": 1.0}}
    fused = reciprocal_rank_fusion([run_a, run_b], top_k=1, k=10)
    assert fused == {"q": {"a": pytest.approx(1 / 11 + 1 / 11)}}
    swapped = reciprocal_rank_fusion([{"q": {"a": 2.0, "b": 1.0}}, {"q": {"b": 2.0, "a": 1.0}}], top_k=5, k=1)
    assert list(swapped["q"]) == ["a", "b"]
    assert swapped["q"]["a"] == pytest.approx(1 / 2 + 1 / 3)
    assert swapped["q"]["b"] == pytest.approx(1 / 2 + 1 / 3)


def test_rank_corpus_full_dimension():
    corpus = StoredEmbeddings(
        vectors=np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32), doc_ids=["a", "b", "c"], info={}
    )
    run = rank_corpus(["q"], np.array([[1.0, 0.0]], dtype=np.float32), corpus, top_k=2, chunk_size=2)
    assert list(run["q"]) == ["a", "c"]
    assert run["q"]["c"] == pytest.approx(0.6)


def test_rank_corpus_truncation_renormalises():
    vectors = np.array(
        [
            [0.6, 0.0, 0.8, 0.0],  # truncated to 2 dims: [1, 0]
            [0.5, 0.5, 0.5, 0.5],  # truncated: [0.707, 0.707]
            [0.0, 0.1, 0.0, 0.995],  # truncated: [0, 1]
        ],
        dtype=np.float32,
    )
    corpus = StoredEmbeddings(vectors=normalise_rows(vectors), doc_ids=["a", "b", "c"], info={})
    query = normalise_rows(np.array([[0.3, 0.0, 0.0, 0.954]], dtype=np.float32))
    full = rank_corpus(["q"], query, corpus, top_k=3)
    truncated = rank_corpus(["q"], query, corpus, top_k=3, dim=2)
    assert list(full["q"])[0] == "c"
    assert list(truncated["q"]) == ["a", "b", "c"]
    # After re-normalisation the query prefix is [1, 0]: scores are true cosines of the prefixes.
    assert truncated["q"]["a"] == pytest.approx(1.0, abs=1e-6)
    assert truncated["q"]["b"] == pytest.approx(np.sqrt(0.5), abs=1e-6)
    assert truncated["q"]["c"] == pytest.approx(0.0, abs=1e-6)
    # The stored vectors are not modified by truncation.
    np.testing.assert_allclose(corpus.vectors, normalise_rows(vectors))


def test_normalise_rows_keeps_zero_rows():
    out = normalise_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_save_load_embeddings_round_trip(tmp_path):
    stored = StoredEmbeddings(
        vectors=np.arange(12, dtype=np.float32).reshape(3, 4) / 10,
        doc_ids=["d1", "dé", "d 3"],
        info={"model": "m", "document_prompt": "", "max_seq_length": 32},
    )
    folder = tmp_path / "emb" / "base"
    save_embeddings(folder, stored)
    loaded = load_embeddings(folder)
    assert loaded.vectors.dtype == np.float32
    np.testing.assert_array_equal(loaded.vectors, stored.vectors)
    assert loaded.doc_ids == stored.doc_ids
    assert loaded.info == stored.info
    assert sorted(p.name for p in folder.iterdir()) == ["doc_ids.json", "info.json", "vectors.npy"]
    assert [p.name for p in folder.parent.iterdir()] == ["base"]  # no temporary sibling left


def test_encode_unit_norm_float32(tiny_model):
    texts = ["parse JSON text", "list files in a folder", "square root of a number"]
    vectors = encode(tiny_model, texts, progress=False)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    again = encode(tiny_model, texts, batch_size=2, progress=False)
    np.testing.assert_allclose(vectors, again, atol=1e-5)


def test_encode_prompt_changes_vectors(tiny_model):
    plain = encode(tiny_model, ["parse JSON text"], progress=False)
    prompted = encode(tiny_model, ["parse JSON text"], prompt="query: ", progress=False)
    same_as_concat = encode(tiny_model, ["query: parse JSON text"], progress=False)
    assert not np.allclose(plain, prompted, atol=1e-4)
    np.testing.assert_allclose(prompted, same_as_concat, atol=1e-5)


def test_encode_empty_input(tiny_model):
    vectors = encode(tiny_model, [], progress=False)
    assert vectors.shape == (0, 64)
    assert vectors.dtype == np.float32
