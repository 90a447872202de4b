"""The dev candidate pool: judged documents plus both retrievers' top k, bounded by queries x (2k + judged), and
the same dev metrics as the whole corpus when it holds the whole corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
from train_fixtures import write_project

from embedft.config import BaseParams, Bm25Params, MachineSettings
from embedft.core import PipelineError, read_corpus, read_split
from embedft.encoding import encode, load_model
from embedft.retrieval import bm25_run
from embedft.training import CandidatePool, load_dev_set
from embedft.training.monitor import dev_evaluator, dev_metrics

MACHINE = MachineSettings(device="cpu", encode_batch_size=16)


def project_with_judgements(tmp_path, tiny_model_path):
    """The tiny project with 4 dev queries, each also judging one more document at grade 0."""
    project = write_project(tmp_path, tiny_model_path, dev_queries=4)
    qrels = project / "data" / "split" / "dev" / "qrels.tsv"
    corpus = list(read_corpus(project / "data" / "corpus" / "corpus.jsonl"))
    qrels.write_text(qrels.read_text() + "".join(f"q{i}\t{corpus[11 - i]}\t0\n" for i in range(4)))
    return project


def pool_for(project, tiny_model_path, k: int) -> CandidatePool:
    base = BaseParams(model=str(tiny_model_path), max_seq_length=32)
    return CandidatePool(project / "data" / "embeddings" / "base", base, MACHINE, k, Bm25Params())


def dev_set(project, pool=None, max_documents: int = 0):
    return load_dev_set(project / "data" / "split", project / "data" / "corpus" / "corpus.jsonl", max_documents, seed=0,
                        pool=pool)


def test_the_pool_holds_the_judged_documents_and_both_retrievers_top_k(tmp_path, tiny_model_path):
    project = project_with_judgements(tmp_path, tiny_model_path)
    corpus = read_corpus(project / "data" / "corpus" / "corpus.jsonl")
    queries, qrels = read_split(project / "data" / "split" / "dev")
    k = 1

    dev = dev_set(project, pool_for(project, tiny_model_path, k))

    ids = sorted(queries)
    model = load_model(str(tiny_model_path), "cpu", 32)
    query_vectors = encode(model, [queries[q] for q in ids], progress=False)
    stored = np.load(project / "data" / "embeddings" / "base" / "vectors.npy")
    dense = {ids[row]: {list(corpus)[int(np.argmax(query_vectors[row] @ stored.T))]} for row in range(len(ids))}
    lexical = bm25_run(list(corpus), [d.full_text for d in corpus.values()], ids, [queries[q] for q in ids], k)
    expected = set()
    for q in ids:
        expected |= set(qrels[q]) | dense[q] | set(lexical[q])
        assert set(qrels[q]) <= set(dev.documents), "every judged document, grade 0 too"
        assert dense[q] <= set(dev.documents) and set(lexical[q]) <= set(dev.documents)
    assert set(dev.documents) == expected
    assert len(dev.documents) <= sum(2 * k + len(qrels[q]) for q in ids)
    assert len(dev.documents) < len(corpus), "the pool must leave documents out for this test to mean anything"
    assert dev.searched == "candidates" and dev.corpus_documents == len(corpus)
    assert dev.relevant_docs == {q: {d for d, grade in qrels[q].items() if grade > 0} for q in ids}
    assert all(dev.documents[d] == corpus[d].full_text for d in dev.documents)


def test_a_pool_that_holds_the_corpus_gives_the_full_corpus_metrics(tmp_path, tiny_model_path):
    project = project_with_judgements(tmp_path, tiny_model_path)
    whole = dev_set(project)
    pooled = dev_set(project, pool_for(project, tiny_model_path, k=12))  # dense top 12 = the 12 documents

    assert pooled.searched == "candidates" and whole.searched == "corpus"
    assert pooled.documents == whole.documents
    base = BaseParams(model=str(tiny_model_path), max_seq_length=32, query_prompt="query: ")
    model = load_model(str(tiny_model_path), "cpu", 32)
    assert dev_metrics(dev_evaluator(pooled, base, MACHINE)(model), prefix="") == \
        dev_metrics(dev_evaluator(whole, base, MACHINE)(model), prefix="")


def test_a_capped_pool_keeps_the_judged_documents_then_the_best_ranked(tmp_path, tiny_model_path):
    project = project_with_judgements(tmp_path, tiny_model_path)
    _, qrels = read_split(project / "data" / "split" / "dev")
    judged = set().union(*(set(docs) for docs in qrels.values()))  # 4 relevant and 4 at grade 0
    top_ranked = set(dev_set(project, pool_for(project, tiny_model_path, k=1)).documents) - judged

    capped = set(dev_set(project, pool_for(project, tiny_model_path, k=12), max_documents=len(judged) + 2).documents)

    assert len(capped) == len(judged) + 2 and judged <= capped
    extra = capped - judged
    assert extra <= top_ranked or top_ranked <= extra, "the candidates ranked first by a retriever come first"
    assert set(dev_set(project, pool_for(project, tiny_model_path, k=12), max_documents=3).documents) == judged


def test_embeddings_of_another_model_are_refused_with_the_folder(tmp_path, tiny_model_path):
    project = project_with_judgements(tmp_path, tiny_model_path)
    info = project / "data" / "embeddings" / "base" / "info.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "model": "another/model"}))

    with pytest.raises(PipelineError, match=r"data/embeddings/base holds embeddings of 'another/model', not base.model"):
        dev_set(project, pool_for(project, tiny_model_path, k=2))
