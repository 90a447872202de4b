"""encode_backend ray on a local Ray cluster that the test starts on 127.0.0.1: the same vectors (within
export.tolerance) and the same downstream metrics as the in-process PyTorch path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedft.config import BaseParams, ExportParams, MachineSettings
from embedft.core import read_corpus, read_qrels, read_queries
from embedft.encoding import encode, load_model, store_corpus_embeddings
from embedft.evaluation import mean_metrics, per_query_metrics
from embedft.retrieval import rank_corpus

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # starts a Ray cluster


@pytest.fixture(scope="module")
def local_cluster():
    from embedft.encoding.ray_backend import job_runtime_env

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", runtime_env=job_runtime_env())
    yield
    ray.shutdown()


def test_ray_store_gives_the_in_process_vectors_and_metrics(local_cluster, tiny_model_path: Path, tiny_dataset: Path,
                                                            tmp_path: Path) -> None:
    corpus = read_corpus(tiny_dataset / "corpus.jsonl")
    queries = read_queries(tiny_dataset / "queries.jsonl")
    qrels = read_qrels(tiny_dataset / "qrels.tsv")
    model = load_model(str(tiny_model_path), "cpu", 64)
    base = BaseParams(model=str(tiny_model_path), max_seq_length=64)
    query_ids = sorted(queries)
    query_vectors = encode(model, [queries[q] for q in query_ids], progress=False)
    stores, metrics = {}, {}
    for backend in ("torch", "ray"):
        machine = MachineSettings(encode_backend=backend, encode_batch_size=4, encode_shard_size=4, ray_workers=2)
        stores[backend] = store_corpus_embeddings(tmp_path / backend, model, str(tiny_model_path), list(corpus),
                                                  [d.full_text for d in corpus.values()], base, machine, ExportParams(),
                                                  work_root=tmp_path / "work")
        metrics[backend] = mean_metrics(per_query_metrics(qrels, rank_corpus(query_ids, query_vectors, stores[backend], 10)))
    assert stores["ray"].doc_ids == stores["torch"].doc_ids
    assert float(np.abs(np.asarray(stores["ray"].vectors) - np.asarray(stores["torch"].vectors)).max()) <= ExportParams().tolerance
    assert metrics["ray"] == pytest.approx(metrics["torch"], abs=1e-9)
