"""Evaluation wall time: the template's evaluation path vs sentence-transformers' InformationRetrievalEvaluator.

Both score the same model on the same BEIR test queries in the same process. The template's path is
timed twice: encoding the corpus itself (like the evaluator), and reusing stored corpus embeddings (what the
`evaluate` stage does for the base model, whose embeddings `mine_negatives` already computed).

Usage:
    python bench/eval_speed.py --dataset data/sample --dataset ../shared/bench/scifact
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_split(folder: Path):
    """Corpus, queries and qrels of a dataset's test queries (qrels/test.tsv, else a seeded 30% of qrels.tsv)."""
    from embedft.config import SplitParams
    from embedft.core import read_corpus, read_qrels, read_queries, relevant
    from stages.split import split_query_ids, subset

    corpus = read_corpus(folder / "corpus.jsonl")
    queries = read_queries(folder / "queries.jsonl")
    if (folder / "qrels" / "test.tsv").exists():
        qrels = relevant(read_qrels(folder / "qrels" / "test.tsv", queries, corpus))
    else:
        everything = relevant(read_qrels(folder / "qrels.tsv", queries, corpus))
        qrels = subset(everything, split_query_ids(list(everything), SplitParams(), 42)["test"])
    return corpus, {q: queries[q] for q in qrels}, qrels


def measure(folder: Path) -> dict:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from embedft.encoding import StoredEmbeddings, encode, load_model
    from embedft.evaluation import mean_metrics, per_query_metrics
    from embedft.retrieval import rank_corpus

    corpus, queries, qrels = test_split(folder)
    model = load_model("sentence-transformers/all-MiniLM-L6-v2", "cpu", 256)
    query_ids = sorted(queries)
    texts = [d.full_text for d in corpus.values()]

    started = time.perf_counter()
    stored = StoredEmbeddings(encode(model, texts, progress=False), list(corpus), {})
    encoded_at = time.perf_counter()
    vectors = encode(model, [queries[q] for q in query_ids], progress=False)
    ours = mean_metrics(per_query_metrics(qrels, rank_corpus(query_ids, vectors, stored, 100)))
    finished = time.perf_counter()

    evaluator = InformationRetrievalEvaluator(
        queries=queries, corpus=dict(zip(corpus, texts)), relevant_docs={q: set(d) for q, d in qrels.items()},
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[1, 10, 100], map_at_k=[100],
        show_progress_bar=False, batch_size=32, name="bench",
    )
    evaluator_started = time.perf_counter()
    theirs = evaluator(model)
    evaluator_s = time.perf_counter() - evaluator_started
    return {
        "dataset": str(folder), "documents": len(corpus), "queries": len(query_ids),
        "template_encode_corpus_and_evaluate_s": round(finished - started, 1),
        "template_with_stored_corpus_embeddings_s": round(finished - encoded_at, 2),
        "information_retrieval_evaluator_s": round(evaluator_s, 1),
        "ratio_full": round((finished - started) / evaluator_s, 3),
        "ratio_with_stored_embeddings": round((finished - encoded_at) / evaluator_s, 4),
        "ndcg@10": {"template": ours["ndcg@10"], "evaluator": round(theirs["bench_cosine_ndcg@10"], 6)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    args = parser.parse_args()
    from run_pipeline import machine

    rows = [measure(folder) for folder in args.dataset]
    for row in rows:
        print(json.dumps(row))
    out = ROOT / "bench" / "results" / "eval_speed.json"
    out.write_text(json.dumps({"machine": machine(), "date": datetime.date.today().isoformat(),
                               "command": "python bench/eval_speed.py " + " ".join(f"--dataset {d}" for d in args.dataset),
                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
