"""Half precision on CUDA (encode_precision) against float32 on the same texts, and several devices through
sentence-transformers' multi-process pool against the in-process path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_embedding_store import encode_store, make_corpus

from embedft.config import ExportParams, MachineSettings, Params
from embedft.core import read_corpus, read_qrels, read_queries
from embedft.encoding import encode, inference_dtype, load_embeddings, load_model, store_corpus_embeddings
from embedft.evaluation import mean_metrics, metric_key, per_query_metrics
from embedft.retrieval import rank_corpus

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def test_precision_applies_on_cuda_only() -> None:
    assert {inference_dtype(p, "cpu") for p in ("auto", "float32", "float16", "bfloat16")} == {torch.float32}
    assert inference_dtype("float16", "cuda:1") == torch.float16 and inference_dtype("bfloat16", "cuda") == torch.bfloat16
    assert inference_dtype("float32", "cuda") == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["auto", "float16"])
def test_half_precision_keeps_the_sample_ranking(precision: str, tmp_path: Path) -> None:
    """The packaged MiniLM on the sample corpus and all its judged queries: nDCG@10 within 0.001 of float32, and the
    top-10 rankings almost all the same."""
    corpus, queries = read_corpus(SAMPLE / "corpus.jsonl"), read_queries(SAMPLE / "queries.jsonl")
    qrels = read_qrels(SAMPLE / "qrels.tsv", queries, corpus)
    base = Params().base
    query_ids = sorted(q for q in queries if q in qrels)
    runs, vectors = {}, {}
    for name, setting in (("float32", "float32"), ("half", precision)):
        model = load_model(base.model, "cuda", base.max_seq_length)
        machine = MachineSettings(device="cuda", encode_batch_size=256, encode_precision=setting)
        stored = store_corpus_embeddings(tmp_path / name, model, base.model, list(corpus), [d.full_text for d in corpus.values()],
                                         base, machine, ExportParams(), work_root=tmp_path / "work")
        query_vectors = encode(model, [queries[q] for q in query_ids], base.query_prompt, 256, progress=False)
        vectors[name] = np.asarray(stored.vectors)
        runs[name] = rank_corpus(query_ids, query_vectors, stored, 10)
    ndcg = {name: mean_metrics(per_query_metrics(qrels, run))[metric_key("nDCG@10")] for name, run in runs.items()}
    assert abs(ndcg["half"] - ndcg["float32"]) <= 0.001, ndcg
    same_top1 = np.mean([next(iter(runs["half"][q])) == next(iter(runs["float32"][q])) for q in query_ids])
    assert same_top1 >= 0.98
    assert float(np.abs(vectors["half"] - vectors["float32"]).max()) <= 1e-2


@pytest.mark.slow  # starts two encoder processes
def test_the_multi_process_pool_gives_the_in_process_vectors(tiny_model_path: Path, tmp_path: Path) -> None:
    corpus = make_corpus(60)
    encode_store(tiny_model_path, corpus, tmp_path / "one", tmp_path / "work")
    encode_store(tiny_model_path, corpus, tmp_path / "pool", tmp_path / "work", encode_devices=["cpu", "cpu"])
    one, pool = load_embeddings(tmp_path / "one").vectors, load_embeddings(tmp_path / "pool", corpus).vectors
    assert float(np.abs(one - pool).max()) <= ExportParams().tolerance
