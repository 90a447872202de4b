"""Forgetting: how much the fine-tuned model lost on an out-of-domain dataset, relative to the base model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from embedft.config import BaseParams, EvaluateParams, MachineSettings
from embedft.core import DataFileError, read_corpus, read_qrels, read_queries, relevant
from embedft.encoding import corpus_embeddings, encode
from embedft.evaluation.ir_metrics import mean_metrics, per_query_metrics
from embedft.evaluation.statistics import compare_systems
from embedft.retrieval import rank_corpus


def out_of_domain_qrels_path(folder: Path) -> Path:
    """``qrels/test.tsv`` when the folder has one, else ``qrels.tsv``."""
    split = folder / "qrels" / "test.tsv"
    return split if split.exists() else folder / "qrels.tsv"


def forgetting_report(
    folder: Path, models: dict[str, SentenceTransformer], base: BaseParams, settings: EvaluateParams, machine: MachineSettings,
) -> dict | None:
    """Metrics of each model on the out-of-domain set and the fine-tuned model's drop; None when not configured.

    Args:
        folder: a BEIR dataset folder; without a corpus.jsonl the check is skipped.
        models: 'base' and 'finetuned' encoders.
        base: prompts and seed.
        settings: metric cutoffs and bootstrap resamples.
        machine: batch size and search chunk size.
    """
    if not (folder / "corpus.jsonl").exists():
        return None
    corpus = read_corpus(folder / "corpus.jsonl")
    queries = read_queries(folder / "queries.jsonl")
    qrels = relevant(read_qrels(out_of_domain_qrels_path(folder), queries, corpus))
    if not qrels:
        raise DataFileError(out_of_domain_qrels_path(folder), "no relevant judgements: cannot measure forgetting")
    query_ids = sorted(qrels)
    depth = min(settings.depth, len(corpus))
    per_query = {}
    for name, model in models.items():
        stored = corpus_embeddings(model, name, corpus, base, machine.encode_batch_size)
        vectors = encode(model, [queries[q] for q in query_ids], base.query_prompt, machine.encode_batch_size, progress=False)
        run = rank_corpus(query_ids, vectors, stored, depth, machine.search_chunk_size)
        per_query[name] = per_query_metrics(qrels, run, settings.measures())
    scores = {name: np.array([rows[q][settings.headline] for q in query_ids]) for name, rows in per_query.items()}
    comparison = compare_systems(scores["finetuned"], scores["base"], settings.bootstrap_resamples, base.seed)
    return {
        "queries": len(query_ids),
        "documents": len(corpus),
        "base": mean_metrics(per_query["base"]),
        "finetuned": mean_metrics(per_query["finetuned"]),
        f"drop_{settings.headline}": round(-comparison["difference"], 6),
        "finetuned_vs_base": comparison,
    }
