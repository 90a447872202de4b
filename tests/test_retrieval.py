"""Exact chunked search, run construction, fusion, truncated ranking, stored embeddings and encoding."""

from __future__ import annotations

import numpy as np
import pytest

from embedft.core.errors import PipelineError
from embedft.encoding.encoder import encode
from embedft.encoding.store import StoredEmbeddings, load_embeddings, save_embeddings
from embedft.mining.search_backend import search
from embedft.retrieval.bm25 import bm25_run, bm25_search
from embedft.retrieval.exact import BYTES_PER_SCORE, exact_search, normalise_rows, search_block_shape
from embedft.retrieval.fusion import reciprocal_rank_fusion
from embedft.retrieval.runs import rank_corpus, to_run


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_path), device="cpu")


def brute_force(queries: np.ndarray, corpus: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries.astype(np.float64) @ corpus.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return order, np.take_along_axis(scores, order, axis=1)


def unit_vectors(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """``rows`` random float32 vectors of length 1, as the stages store embeddings."""
    return normalise_rows(rng.normal(size=(rows, dim))).astype(np.float32)


@pytest.mark.parametrize("chunk_size", [7, 1, 50, 10_000])
@pytest.mark.parametrize("top_k", [1, 5, 20])
def test_exact_search_matches_brute_force(chunk_size, top_k):
    rng = np.random.default_rng(1234)
    queries = unit_vectors(rng, 9, 16)
    corpus = unit_vectors(rng, 50, 16)
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


# --- memory-bounded search, FAISS, memory-mapped embeddings, BM25 ---------------------------------------------


@pytest.mark.parametrize("query_batch_size", [1, 3, 4, 100])
@pytest.mark.parametrize("chunk_size", [1, 6, 50])
def test_query_batches_give_the_same_results(query_batch_size, chunk_size):
    rng = np.random.default_rng(5)
    queries = unit_vectors(rng, 10, 8)
    corpus = unit_vectors(rng, 40, 8)
    indices, scores = exact_search(queries, corpus, 7, chunk_size, query_batch_size)
    expected_indices, expected_scores = brute_force(queries, corpus, 7)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


@pytest.mark.parametrize("memory_mb", [1, 16, 1024])
@pytest.mark.parametrize("n_queries, n_docs", [(10, 5), (100_000, 1_000_000), (3, 10_000_000), (5000, 2000)])
def test_search_blocks_stay_within_the_memory_budget(memory_mb, n_queries, n_docs):
    queries, docs = search_block_shape(memory_mb, n_queries, n_docs)
    assert 1 <= queries <= n_queries and 1 <= docs <= n_docs
    assert queries * docs * BYTES_PER_SCORE <= memory_mb * 2**20 or (queries, docs) == (n_queries, n_docs)
    assert queries >= min(n_queries, 64)  # enough queries per block to keep the matrix product efficient


def test_search_block_grows_with_the_budget_not_the_corpus():
    assert search_block_shape(64, 1000, 10**6) == search_block_shape(64, 1000, 10**7)
    assert search_block_shape(8, 100, 10**6)[1] < search_block_shape(64, 100, 10**6)[1]


def test_search_exact_backend_matches_brute_force_under_a_tiny_budget():
    rng = np.random.default_rng(8)
    queries = unit_vectors(rng, 70, 8)
    corpus = unit_vectors(rng, 300, 8)
    indices, _ = search(queries, corpus, 12, backend="exact", memory_mb=1 / 64)  # blocks of 64 x 16
    np.testing.assert_array_equal(indices, brute_force(queries, corpus, 12)[0])


def test_faiss_flat_matches_exact_search_with_the_same_ties():
    rng = np.random.default_rng(9)
    queries = unit_vectors(rng, 20, 16)
    corpus = unit_vectors(rng, 200, 16)
    corpus[[150, 30, 90]] = queries[0]  # three identical best rows: ties go to the lower position
    indices, scores = search(queries, corpus, 10, backend="faiss")
    expected_indices, expected_scores = exact_search(queries, corpus, 10)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    assert indices[0, :3].tolist() == [30, 90, 150]


def test_faiss_approximate_index_finds_valid_neighbours():
    rng = np.random.default_rng(10)
    corpus = unit_vectors(rng, 500, 16)
    indices, scores = search(corpus[:5], corpus, 5, backend="faiss", faiss_index="IVF8,Flat", faiss_search_params="nprobe=8")
    assert indices[:, 0].tolist() == [0, 1, 2, 3, 4]  # with every list probed, IVF is exact
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("spec, params, message", [
    ("Bogus", "", "mine_negatives.faiss_index 'Bogus' is not a FAISS index description: could not parse index string Bogus"),
    ("IVF64,Flat", "", "mine_negatives.faiss_index 'IVF64,Flat' cannot be trained on 20 documents"),
    ("Flat", "nprobe=3", "mine_negatives.faiss_search_params 'nprobe=3'"),
])
def test_faiss_settings_errors_name_the_key(spec, params, message):
    corpus = normalise_rows(np.random.default_rng(0).normal(size=(20, 8))).astype(np.float32)
    with pytest.raises(PipelineError) as raised:
        search(corpus[:2], corpus, 3, backend="faiss", faiss_index=spec, faiss_search_params=params)
    assert message in str(raised.value)


def test_faiss_missing_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(PipelineError, match=r"search_backend is 'faiss', but faiss is not installed; pip install"):
        search(np.ones((1, 2), np.float32), np.ones((3, 2), np.float32), 2, backend="faiss")


def test_memory_mapped_embeddings_read_the_same_vectors(tmp_path):
    stored = StoredEmbeddings(np.arange(12, dtype=np.float32).reshape(4, 3), ["a", "b", "c", "d"], {"model": "m"})
    save_embeddings(tmp_path / "e", stored)
    mapped = load_embeddings(tmp_path / "e", memory_map=True)
    assert isinstance(mapped.vectors, np.memmap)
    np.testing.assert_array_equal(mapped.vectors, stored.vectors)
    query = np.array([[0.0, 0.0, 1.0]], dtype=np.float32)
    assert exact_search(query, mapped.vectors, 2, chunk_size=1)[0].tolist() == [[3, 2]]


def test_bm25_search_orders_by_score_then_position_and_skips_non_matches():
    texts = ["red apple", "green apple pie tart", "blue sky", "red apple"]
    indices, scores = bm25_search(texts, ["apple", "nothing matches"], 4)
    assert indices[0].tolist() == [0, 3, 1, -1]  # rows 0 and 3 tie: the lower first; row 2 has no "apple"
    assert scores[0, 0] == scores[0, 1] > scores[0, 2] > 0 and scores[0, 3] == 0
    assert indices[1].tolist() == [-1, -1, -1, -1]
    assert bm25_search(texts, [], 3)[0].shape == (0, 3)
    assert bm25_run(["a", "b", "c", "d"], texts, ["q"], ["apple"], 10) == {
        "q": {"a": pytest.approx(float(scores[0, 0])), "d": pytest.approx(float(scores[0, 1])), "b": pytest.approx(float(scores[0, 2]))}}
