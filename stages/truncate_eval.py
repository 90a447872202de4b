"""Stage `truncate_eval`: retrieval quality at each Matryoshka width and precision, for base and fine-tuned.

For every dim in params crossed with float32, int8 and binary embeddings, it reports the metrics, the
retention of the headline metric relative to the same model at full width in float32, and the bytes stored
per vector, so the cheapest setting that keeps the quality can be picked. The fine-tuned model at the chosen
default width is compared with the full-width base model by a paired bootstrap interval. Both corpora's
embeddings come from the embedding stages (`embed_corpus`, `embed_finetuned`); only the test queries are
encoded here. The whole table goes to ``reports/truncate.json`` and ``plots/ndcg_by_dim.csv``; the numbers at the
width you plan to ship (``truncate_eval.default_dim``) to ``metrics/truncate.json``.
"""

from __future__ import annotations

import numpy as np

from embedft.config import load_machine, load_params
from embedft.core import PipelineError, read_split, run_stage, write_json_atomic, write_text_atomic
from embedft.core.artifacts import (
    BASE_EMBEDDINGS_DIR,
    FINETUNED_EMBEDDINGS_DIR,
    FINETUNED_MODEL_DIR,
    NDCG_BY_DIM_PLOT,
    SPLIT_DIR,
    TRUNCATE_METRICS,
    TRUNCATE_REPORT,
)
from embedft.encoding import encode, load_embeddings, load_model_with
from embedft.evaluation import compare_systems, plot_table, truncation_grid, truncation_summary


def main() -> None:
    params, machine = load_params(), load_machine()
    base, settings, metrics = params.base, params.truncate_eval, params.evaluate
    queries, qrels = read_split(SPLIT_DIR / "test")
    if not qrels:
        print("truncate_eval: the test split has no relevance judgements; no quality metric was computed")
        report = {"test_queries": len(queries), "judged_queries": 0}
        write_json_atomic(TRUNCATE_REPORT, report)
        write_json_atomic(TRUNCATE_METRICS, report)
        write_text_atomic(NDCG_BY_DIM_PLOT, "dim\n")
        return
    query_ids = sorted(queries)
    # Memory-mapped: each width's prefixes are read (and re-normalised) from disk, not a second copy held first.
    systems = {"base": (base.model, load_embeddings(BASE_EMBEDDINGS_DIR, memory_map=True)),
               "finetuned": (str(FINETUNED_MODEL_DIR), load_embeddings(FINETUNED_EMBEDDINGS_DIR, memory_map=True))}
    report: dict = {"test_queries": len(queries)}
    per_query = {}
    for name, (model_name, stored) in systems.items():
        full = stored.vectors.shape[1]
        too_wide = [d for d in settings.dims if d > full]
        if too_wide:
            raise PipelineError(f"params.yaml: truncate_eval.dims {too_wide} exceed the {name} model's dimension {full}")
        model = load_model_with(base, machine, model_name, key="base.model" if model_name == base.model else None)
        vectors = encode(model, [queries[q] for q in query_ids], base.query_prompt, machine.encode_batch_size, progress=False)
        report[name], per_query[name] = truncation_grid(query_ids, vectors, stored, qrels, settings, metrics,
                                                        machine.search_chunk_size)
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
    write_text_atomic(NDCG_BY_DIM_PLOT, plot_table(report, settings, metrics.headline))
    write_json_atomic(TRUNCATE_REPORT, report)
    write_json_atomic(TRUNCATE_METRICS, truncation_summary(report, settings, metrics.headline))


if __name__ == "__main__":
    run_stage(main)
