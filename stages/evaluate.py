"""Stage `evaluate`: base vs fine-tuned (vs BM25 and the hybrid) on the test split.

Writes ``metrics/evaluate.json`` (mean metrics per system and fine-tuned minus base) and the fine-tuned
model's corpus embeddings, which `truncate_eval` reuses. The base model's corpus embeddings come from
`mine_negatives` and are not recomputed.
"""

from __future__ import annotations

from stages.atomic import write_json_atomic
from stages.data_io import read_corpus, read_split
from stages.errors import run_stage
from stages.ir_metrics import mean_metrics, metric_deltas, per_query_metrics
from stages.lexical import bm25_run
from stages.models import load_model
from stages.params import load_params
from stages.paths import BASE_EMBEDDINGS_DIR, FINETUNED_EMBEDDINGS_DIR, FINETUNED_MODEL_DIR, METRICS_DIR, SPLIT_DIR, corpus_path
from stages.retrieval import StoredEmbeddings, encode, load_embeddings, rank_corpus, reciprocal_rank_fusion, save_embeddings


def main() -> None:
    params = load_params()
    base, settings = params.base, params.evaluate
    corpus = read_corpus(corpus_path(params.data))
    queries, qrels = read_split(SPLIT_DIR / "test")
    finetuned = load_model(str(FINETUNED_MODEL_DIR), base.device, base.max_seq_length)
    finetuned_corpus = StoredEmbeddings(
        vectors=encode(finetuned, [d.full_text for d in corpus.values()], base.document_prompt, base.encode_batch_size),
        doc_ids=list(corpus),
        info={"model": str(FINETUNED_MODEL_DIR), "document_prompt": base.document_prompt, "max_seq_length": base.max_seq_length},
    )
    if not queries:
        report = {"test_queries": 0, "corpus_documents": len(corpus)}
        print("evaluate: the dataset has no labelled test queries, so there is nothing to measure. "
              "Add queries.jsonl and qrels to the dataset folder to compare base and fine-tuned models.")
    else:
        query_ids = sorted(queries)
        query_texts = [queries[q] for q in query_ids]
        base_model = load_model(base.model, base.device, base.max_seq_length)
        runs = {}
        for name, model, stored in (("base", base_model, load_embeddings(BASE_EMBEDDINGS_DIR)), ("finetuned", finetuned, finetuned_corpus)):
            vectors = encode(model, query_texts, base.query_prompt, base.encode_batch_size, progress=False)
            runs[name] = rank_corpus(query_ids, vectors, stored, settings.top_k, base.search_chunk_size)
        runs["bm25"] = bm25_run(list(corpus), [d.full_text for d in corpus.values()], query_ids, query_texts, settings.top_k)
        runs["hybrid"] = reciprocal_rank_fusion([runs["finetuned"], runs["bm25"]], settings.top_k)
        means = {name: mean_metrics(per_query_metrics(qrels, run)) for name, run in runs.items()}
        report = {"test_queries": len(queries), "corpus_documents": len(corpus), **means,
                  "delta_finetuned_vs_base": metric_deltas(means["finetuned"], means["base"])}
        for name in runs:
            print(f"evaluate: {name:<10} " + "  ".join(f"{k}={v:.4f}" for k, v in means[name].items()))
    save_embeddings(FINETUNED_EMBEDDINGS_DIR, finetuned_corpus)
    write_json_atomic(METRICS_DIR / "evaluate.json", report)


if __name__ == "__main__":
    run_stage(main)
