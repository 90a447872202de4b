"""Stage `truncate_eval`: retrieval quality at each Matryoshka width and precision, for base and fine-tuned.

For every dim in params crossed with float32, int8 and binary embeddings, it reports the metrics, the
retention of the headline metric relative to the same model at full width in float32, and the bytes stored
per vector, so the cheapest setting that keeps the quality can be picked. The fine-tuned model at the chosen
default width is compared with the full-width base model by a paired bootstrap interval. Both corpora's
embeddings are reused from earlier stages; only the test queries are encoded here.
"""

from __future__ import annotations

import numpy as np

import json

from stages.atomic import write_json_atomic, write_text_atomic
from stages.data_io import Qrels, read_split
from stages.errors import PipelineError, run_stage
from stages.verdict import print_verdict_banner
from stages.ir_metrics import mean_metrics, per_query_metrics
from stages.models import load_model_with
from stages.params import EvaluateParams, TruncateEvalParams, load_params
from stages.paths import BASE_EMBEDDINGS_DIR, FINETUNED_EMBEDDINGS_DIR, FINETUNED_MODEL_DIR, METRICS_DIR, PLOTS_DIR, SPLIT_DIR
from stages.quantization import quantized_pair
from stages.retrieval import StoredEmbeddings, encode, load_embeddings, normalise_rows, rank_corpus
from stages.statistics import compare_systems


def truncation_grid(
    query_ids: list[str], query_vectors: np.ndarray, stored: StoredEmbeddings, qrels: Qrels,
    settings: TruncateEvalParams, metrics: EvaluateParams, chunk_size: int,
) -> tuple[dict, dict[tuple[int, str], dict[str, dict[str, float]]]]:
    """Metrics, retention and bytes per vector for each (dim, precision); also the per-query scores of each cell."""
    depth = min(metrics.depth, stored.vectors.shape[0])
    cells, per_query = {}, {}
    for dim in sorted(set(settings.dims), reverse=True):
        corpus_dim, queries_dim = normalise_rows(stored.vectors[:, :dim]), normalise_rows(query_vectors[:, :dim])
        for precision in settings.precisions:
            corpus_q, queries_q, size = quantized_pair(corpus_dim, queries_dim, precision)
            run = rank_corpus(query_ids, queries_q, StoredEmbeddings(corpus_q, stored.doc_ids, {}), depth, chunk_size)
            per_query[(dim, precision)] = per_query_metrics(qrels, run, metrics.measures())
            cells.setdefault(str(dim), {})[precision] = {**mean_metrics(per_query[(dim, precision)]), "bytes_per_vector": size}
    full = stored.vectors.shape[1]
    reference = cells.get(str(full), {}).get("float32") or mean_metrics(
        per_query_metrics(qrels, rank_corpus(query_ids, query_vectors, stored, depth, chunk_size), metrics.measures()))
    for by_precision in cells.values():
        for values in by_precision.values():
            top = reference[metrics.headline]
            values[f"retention_{metrics.headline}_pct"] = round(100.0 * values[metrics.headline] / top, 2) if top > 0 else 0.0
    return cells, per_query


def plot_table(report: dict, settings: TruncateEvalParams, headline: str) -> str:
    """CSV of the headline metric against dim, one column per (model, precision), for `dvc plots`."""
    columns = [(model, precision) for model in ("base", "finetuned") for precision in settings.precisions]
    lines = [",".join(["dim", *(f"{m}_{p}" for m, p in columns)])]
    for dim in sorted(set(settings.dims)):
        lines.append(",".join([str(dim), *(f"{report[m][str(dim)][p][headline]:.6f}" for m, p in columns)]))
    return "\n".join(lines) + "\n"


def main() -> None:
    params = load_params()
    base, settings, metrics = params.base, params.truncate_eval, params.evaluate
    queries, qrels = read_split(SPLIT_DIR / "test")
    if not qrels:
        print("truncate_eval: the test split has no relevance judgements; no quality metric was computed")
        write_json_atomic(METRICS_DIR / "truncate.json", {"test_queries": len(queries), "judged_queries": 0})
        write_text_atomic(PLOTS_DIR / "ndcg_by_dim.csv", "dim\n")
        return
    query_ids = sorted(queries)
    systems = {"base": (base.model, load_embeddings(BASE_EMBEDDINGS_DIR)),
               "finetuned": (str(FINETUNED_MODEL_DIR), load_embeddings(FINETUNED_EMBEDDINGS_DIR))}
    report: dict = {"test_queries": len(queries)}
    per_query = {}
    for name, (model_name, stored) in systems.items():
        full = stored.vectors.shape[1]
        too_wide = [d for d in settings.dims if d > full]
        if too_wide:
            raise PipelineError(f"params.yaml: truncate_eval.dims {too_wide} exceed the {name} model's dimension {full}")
        model = load_model_with(base, model_name, key="base.model" if model_name == base.model else None)
        vectors = encode(model, [queries[q] for q in query_ids], base.query_prompt, base.encode_batch_size, progress=False)
        report[name], per_query[name] = truncation_grid(query_ids, vectors, stored, qrels, settings, metrics, base.search_chunk_size)
        for dim, by_precision in sorted(report[name].items(), key=lambda item: -int(item[0])):
            print(f"truncate_eval: {name:<10} dim={dim:<5} " + "  ".join(
                f"{p}: {v[metrics.headline]:.4f} ({v[f'retention_{metrics.headline}_pct']:.1f}%, {v['bytes_per_vector']} B)"
                for p, v in by_precision.items()))
    chosen, full_base = settings.chosen_dim, max(settings.dims)
    if "float32" in settings.precisions:
        new = [per_query["finetuned"][(chosen, "float32")][q][metrics.headline] for q in query_ids]
        old = [per_query["base"][(full_base, "float32")][q][metrics.headline] for q in query_ids]
        report["chosen_dim"] = {"dim": chosen, "finetuned_vs_base_full": compare_systems(
            np.array(new), np.array(old), params.evaluate.bootstrap_resamples, base.seed)}
        c = report["chosen_dim"]["finetuned_vs_base_full"]
        print(f"truncate_eval: fine-tuned at {chosen} dims vs base at {full_base}: {c['difference']:+.4f} "
              f"(95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")
    write_text_atomic(PLOTS_DIR / "ndcg_by_dim.csv", plot_table(report, settings, metrics.headline))
    write_json_atomic(METRICS_DIR / "truncate.json", report)
    # This is the pipeline's last stage: repeat evaluate's verdict so a regression is the last thing printed.
    verdict = json.loads((METRICS_DIR / "evaluate.json").read_text(encoding="utf-8"))
    print(f"truncate_eval: evaluate's verdict: {str(verdict.get('verdict', 'none')).upper()}")
    print_verdict_banner(verdict, metrics.headline)


if __name__ == "__main__":
    run_stage(main)
