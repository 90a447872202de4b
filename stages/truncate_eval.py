"""Stage `truncate_eval`: retrieval quality at each Matryoshka width, for the base and fine-tuned models.

Both corpora's embeddings are reused from earlier stages; only the test queries are encoded here, so a
change to ``truncate_eval.dims`` reruns in seconds.
"""

from __future__ import annotations

from stages.atomic import write_json_atomic
from stages.data_io import read_split
from stages.errors import PipelineError, run_stage
from stages.ir_metrics import mean_metrics, per_query_metrics
from stages.models import load_model
from stages.params import load_params
from stages.paths import BASE_EMBEDDINGS_DIR, FINETUNED_EMBEDDINGS_DIR, FINETUNED_MODEL_DIR, METRICS_DIR, SPLIT_DIR
from stages.retrieval import encode, load_embeddings, rank_corpus


def main() -> None:
    params = load_params()
    base, settings = params.base, params.truncate_eval
    queries, qrels = read_split(SPLIT_DIR / "test")
    if not queries:
        print("truncate_eval: the dataset has no labelled test queries; nothing to measure")
        write_json_atomic(METRICS_DIR / "truncate.json", {"test_queries": 0})
        return
    systems = {
        "base": (base.model, load_embeddings(BASE_EMBEDDINGS_DIR)),
        "finetuned": (str(FINETUNED_MODEL_DIR), load_embeddings(FINETUNED_EMBEDDINGS_DIR)),
    }
    query_ids = sorted(queries)
    report: dict = {"test_queries": len(queries)}
    for name, (model_name, stored) in systems.items():
        full = stored.vectors.shape[1]
        too_wide = [d for d in settings.dims if d > full]
        if too_wide:
            raise PipelineError(f"params.yaml: truncate_eval.dims {too_wide} exceed the {name} model's dimension {full}")
        model = load_model(model_name, base.device, base.max_seq_length)
        vectors = encode(model, [queries[q] for q in query_ids], base.query_prompt, base.encode_batch_size, progress=False)
        report[name] = {}
        for dim in sorted(set(settings.dims), reverse=True):
            run = rank_corpus(query_ids, vectors, stored, top_k=100, chunk_size=base.search_chunk_size, dim=dim)
            report[name][str(dim)] = mean_metrics(per_query_metrics(qrels, run))
            print(f"truncate_eval: {name:<10} dim={dim:<5} ndcg@10={report[name][str(dim)]['ndcg@10']:.4f}")
    write_json_atomic(METRICS_DIR / "truncate.json", report)


if __name__ == "__main__":
    run_stage(main)
