"""Stage `evaluate`: base vs fine-tuned vs BM25 vs the hybrids (weighted, RRF) vs the alternatives (candidate
models zero-shot, a cross-encoder reranking) on the test split, with paired statistics, a verdict on the
fine-tuned model, and the system to ship, chosen on dev.

Writes ``metrics/evaluate.json`` (what a reviewer compares: the headline metrics per main system, fine-tuned
minus base with its interval and p-value, the verdict, the shipped system against the best alternative),
``reports/evaluate.json`` (every metric per system, dev scores, every paired comparison, the recommendation,
the leakage check, forgetting), ``reports/evaluate_per_query.csv`` and the Recall@k curve for `dvc plots`.
It only measures: the corpus embeddings of the base and fine-tuned models come from `embed_corpus` and
`embed_finetuned`, the hybrid's weight from `tune_hybrid`; queries (and a candidate model's corpus, opt-in) are
encoded here. ``--round N`` evaluates round N's model and also compares it with round N-1's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedft.config import CANDIDATE_PREFIX, load_machine, load_params
from embedft.core import artifacts, read_corpus, read_pairs, read_split, run_stage, write_json_atomic, write_text_atomic
from embedft.core.artifacts import BASE_EMBEDDINGS_DIR, CORPUS_FILE, PAIRS_DIR, PAIRS_FILE, SPLIT_DIR
from embedft.encoding import corpus_embeddings, encode, load_embeddings, load_model_with
from embedft.evaluation import (
    COMPARISONS,
    add_reranked,
    count_leaks,
    dev_headline_scores,
    evaluation_report,
    evaluation_summary,
    forgetting_report,
    headline_scores,
    metric_deltas,
    per_query_metrics,
    per_query_table,
    read_hybrid_choice,
    recall_curve,
    recommend_system,
    retrieval_depth,
    system_agreement,
    system_descriptions,
    system_runs,
    verdict_banner,
)
from embedft.retrieval import rank_corpus


def announce(report: dict, headline: str, systems: list[str]) -> None:
    """Print the table, the leakage counts and the verdict; a regression or a suspected leak is printed loudly."""
    for name in [name for name in systems if name in report]:
        print(f"evaluate: {name:<12} " + "  ".join(f"{k}={v:.4f}" for k, v in report[name].items()))
    c = report["comparisons"]["finetuned_vs_base"]
    print(f"evaluate: fine-tuned - base {headline} = {c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, "
          f"p = {c['p_value']:.4f}; {c['wins']} won, {c['ties']} tied, {c['losses']} lost) -> verdict: {report['verdict'].upper()}")
    leaks = report["leakage"]
    if leaks["near_duplicate"]:
        print(f"evaluate: WARNING: {leaks['near_duplicate']} test queries are in the training pairs "
              f"({leaks['exact']} verbatim, {leaks['normalised']} after normalisation, the rest as near-duplicates)")
    if "forgetting" in report:
        f = report["forgetting"]
        c = f["finetuned_vs_base"]
        print(f"evaluate: out-of-domain ({f['queries']} queries): base {f['base'][headline]:.4f}, fine-tuned "
              f"{f['finetuned'][headline]:.4f}; drop {f[f'drop_{headline}']:+.4f} "
              f"(95% CI of the change {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")
    if banner := verdict_banner(report, headline):
        print(banner)
    print(f"evaluate: {report['shipped']['line']}")


def main(argv: list[str] | None = None) -> None:
    paths = artifacts.parse_round(argv)  # round N > 1 evaluates models/roundN and also compares it with round N-1
    previous = f"round{paths.number - 1}" if paths.number > 1 else None
    params, machine = load_params(), load_machine()
    base, settings = params.base, params.evaluate
    corpus = read_corpus(CORPUS_FILE)
    queries, qrels = read_split(SPLIT_DIR / "test")
    table, curve = "query_id,system\n", "k\n"
    if not queries:
        report = {"test_queries": 0, "corpus_documents": len(corpus)}
        print("evaluate: the dataset has no labelled test queries, so no quality metric was computed. "
              "Add queries.jsonl and qrels to the dataset folder to compare base and fine-tuned models.")
    else:
        hybrid = read_hybrid_choice(paths.hybrid_choice)
        depth = retrieval_depth(settings, len(corpus))
        models = {"base": load_model_with(base, machine), "finetuned": load_model_with(base, machine, str(paths.model), key=None)}
        # Memory-mapped: the exact search reads the stored corpus one chunk at a time.
        stored = {"base": load_embeddings(BASE_EMBEDDINGS_DIR, corpus, memory_map=True),
                  "finetuned": load_embeddings(paths.model_embeddings, corpus, memory_map=True)}
        for name in settings.candidate_models:  # opt-in alternatives: each encodes the corpus once, here
            model = models[CANDIDATE_PREFIX + name] = load_model_with(base, machine, name, key="evaluate.candidate_models")
            stored[CANDIDATE_PREFIX + name] = corpus_embeddings(model, name, corpus, base, machine.encode_batch_size)

        def encode_queries(model, texts: list[str]) -> np.ndarray:
            return encode(model, texts, base.query_prompt, machine.encode_batch_size, progress=False)

        def runs_for(split: dict[str, str]) -> tuple[dict, dict]:
            ids = sorted(split)
            vectors = {name: encode_queries(model, [split[q] for q in ids]) for name, model in models.items()}
            return system_runs(ids, [split[q] for q in ids], vectors, corpus, stored, settings, depth, machine.search_chunk_size,
                               hybrid, params.bm25), vectors

        runs, query_vectors = runs_for(queries)
        dev_queries, dev_qrels = read_split(SPLIT_DIR / "dev")
        dev_runs = runs_for({q: t for q, t in dev_queries.items() if q in dev_qrels})[0] if dev_qrels else {}
        dev_scores = dev_headline_scores(dev_qrels, dev_runs, settings)
        reranked_of = add_reranked(runs, dev_runs, dev_qrels, dev_scores, {**queries, **dev_queries}, corpus, settings, machine)
        if previous:
            previous_model = load_model_with(base, machine, str(paths.miner_model), key=None)
            previous_vectors = encode_queries(previous_model, [queries[q] for q in sorted(queries)])
            previous_corpus = load_embeddings(paths.miner_embeddings, corpus, memory_map=True)
            runs[previous] = rank_corpus(sorted(queries), previous_vectors, previous_corpus, depth, machine.search_chunk_size)
        if not qrels:
            report = {"test_queries": len(queries), "judged_queries": 0, "corpus_documents": len(corpus),
                      "agreement_at_10": system_agreement(runs, 10)}
            print(f"evaluate: the {len(queries)} test queries have no relevance judgements, so no quality metric was computed. "
                  "Overlap of the systems' top 10 (1.0 = identical): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in report["agreement_at_10"].items()))
        else:
            per_query = {name: per_query_metrics(qrels, run, settings.measures()) for name, run in runs.items()}
            pairs = COMPARISONS + ((("finetuned", previous),) if previous else ())
            report = {"corpus_documents": len(corpus), **evaluation_report(per_query, settings, base.seed, pairs)}
            report["hybrid_choice"] = {key: hybrid.get(key) for key in ("weight", "normalisation", "depth", "chosen_on", "dev_score")}
            report["dev"] = {"judged_queries": len(dev_qrels), settings.headline: dev_scores}
            if reranked_of:
                report["reranked_of"] = reranked_of
            descriptions = system_descriptions(list(runs), hybrid, settings, reranked_of)
            report["shipped"] = recommend_system(dev_scores, headline_scores(per_query, settings.headline), descriptions, settings,
                                                 base.seed, reranked_of)
            if previous:
                report[f"delta_finetuned_vs_{previous}"] = metric_deltas(report["finetuned"], report[previous])
            anchors = sorted({pair.anchor for pair in read_pairs(PAIRS_DIR / PAIRS_FILE)})
            anchor_vectors = encode_queries(models["finetuned"], anchors)
            report["leakage"], leaked = count_leaks(queries, anchors, query_vectors["finetuned"], anchor_vectors, settings.leak_similarity)
            forgetting = forgetting_report(Path(settings.out_of_domain_dir), {k: models[k] for k in ("base", "finetuned")}, base,
                                           settings, machine)
            if forgetting:
                report["forgetting"] = forgetting
            table, curve = per_query_table(per_query), recall_curve(qrels, runs, depth)
            announce(report, settings.headline, list(runs))
            if previous:
                c = report["comparisons"][f"finetuned_vs_{previous}"]
                print(f"evaluate: round {paths.number} - {previous} {settings.headline} = {c['difference']:+.4f} "
                      f"(95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, p = {c['p_value']:.4f})")
            if leaked:
                print(f"evaluate: leaked test query ids (first 5): {', '.join(leaked[:5])}")
    if previous:
        report["round"] = paths.number
    write_text_atomic(paths.per_query_table, table)
    write_text_atomic(paths.recall_plot, curve)
    write_json_atomic(paths.evaluate_report, report)
    write_json_atomic(paths.evaluate_metrics, evaluation_summary(report, settings))


if __name__ == "__main__":
    run_stage(main)
