"""Stage `evaluate`: base vs fine-tuned vs BM25 vs hybrid on the test split, with paired statistics and a verdict.

Writes ``metrics/evaluate.json`` (mean metrics per system, fine-tuned minus base, paired comparisons, a
leakage check and the verdict), ``metrics/evaluate_per_query.csv``, the Recall@k curve for `dvc plots`, and
the fine-tuned model's corpus embeddings, which `truncate_eval` reuses. The base model's corpus embeddings
come from `mine_negatives` and are not recomputed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.atomic import write_json_atomic, write_text_atomic
from stages.data_io import Document, read_corpus, read_records, read_split
from stages.errors import run_stage
from stages.forgetting import forgetting_report
from stages.ir_metrics import mean_metrics, metric_deltas, per_query_metrics
from stages.leakage import count_leaks
from stages.lexical import bm25_run
from stages.models import load_model_with
from stages.params import EvaluateParams, load_params
from stages.paths import BASE_EMBEDDINGS_DIR, CORPUS_FILE, PAIRS_DIR, SPLIT_DIR, parse_round
from stages.retrieval import (Run, StoredEmbeddings, corpus_embeddings, encode, load_embeddings, normalise_rows, rank_corpus,
                              reciprocal_rank_fusion, save_embeddings)
from stages.statistics import compare_systems
from stages.verdict import decide_verdict, print_verdict_banner

COMPARISONS = (("finetuned", "base"), ("finetuned", "bm25"), ("hybrid", "base"))
RECALL_CURVE_KS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000)


def retrieval_depth(settings: EvaluateParams, corpus_size: int) -> int:
    """The deepest cutoff, clipped (with a warning) to the corpus size."""
    if settings.depth > corpus_size:
        print(f"evaluate: warning: metric cutoff {settings.depth} exceeds the corpus ({corpus_size} documents); "
              f"ranking all {corpus_size}")
        return corpus_size
    return settings.depth


def system_runs(
    query_ids: list[str], query_texts: list[str], query_vectors: dict[str, np.ndarray], corpus: dict[str, Document],
    stored: dict[str, StoredEmbeddings], settings: EvaluateParams, depth: int, chunk_size: int,
) -> dict[str, Run]:
    """Rankings by every system: base, fine-tuned, BM25, fine-tuned + BM25 fused, and optionally base ⊕ fine-tuned."""
    runs = {name: rank_corpus(query_ids, query_vectors[name], stored[name], depth, chunk_size) for name in ("base", "finetuned")}
    runs["bm25"] = bm25_run(list(corpus), [d.full_text for d in corpus.values()], query_ids, query_texts, depth)
    runs["hybrid"] = reciprocal_rank_fusion([runs["finetuned"], runs["bm25"]], depth)
    if settings.concatenated:
        joined = StoredEmbeddings(normalise_rows(np.hstack([stored["base"].vectors, stored["finetuned"].vectors])),
                                  stored["base"].doc_ids, {"model": "base+finetuned"})
        joined_queries = normalise_rows(np.hstack([query_vectors["base"], query_vectors["finetuned"]]))
        runs["concatenated"] = rank_corpus(query_ids, joined_queries, joined, depth, chunk_size)
    return runs


def system_agreement(runs: dict[str, Run], k: int) -> dict[str, float]:
    """Mean overlap of each pair of systems' top-k documents (|A ∩ B| / k), averaged over queries."""
    def top(run: Run, query_id: str) -> set[str]:
        return {d for d, _ in sorted(run.get(query_id, {}).items(), key=lambda item: (-item[1], item[0]))[:k]}

    names = [n for n in ("base", "finetuned", "bm25") if n in runs]
    query_ids = sorted(runs[names[0]])
    agreement = {}
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            overlaps = [len(top(runs[first], q) & top(runs[second], q)) / k for q in query_ids]
            agreement[f"{first}_vs_{second}"] = round(sum(overlaps) / len(overlaps), 6) if overlaps else 0.0
    return agreement


def per_query_table(per_query: dict[str, dict[str, dict[str, float]]]) -> str:
    """CSV with one row per (query, system) and one column per metric."""
    systems = list(per_query)
    metrics = list(next(iter(per_query[systems[0]].values())))
    lines = [",".join(["query_id", "system", *metrics])]
    for query_id in sorted(per_query[systems[0]]):
        for system in systems:
            values = per_query[system][query_id]
            lines.append(",".join([f'"{query_id}"', system, *(f"{values[m]:.6f}" for m in metrics)]))
    return "\n".join(lines) + "\n"


def recall_curve(qrels, runs: dict[str, Run], depth: int) -> str:
    """CSV of mean Recall@k for each k up to the retrieval depth, one column per system (for `dvc plots`)."""
    ks = [k for k in RECALL_CURVE_KS if k <= depth]
    means = {name: mean_metrics(per_query_metrics(qrels, run, tuple(f"R@{k}" for k in ks))) for name, run in runs.items()}
    lines = [",".join(["k", *runs])]
    lines += [",".join([str(k), *(f"{means[name][f'recall@{k}']:.6f}" for name in runs)]) for k in ks]
    return "\n".join(lines) + "\n"


def evaluation_report(per_query: dict[str, dict[str, dict[str, float]]], settings: EvaluateParams, seed: int,
                      pairs: tuple[tuple[str, str], ...] = COMPARISONS) -> dict:
    """Means per system, fine-tuned minus base, paired comparisons on the headline metric, and the verdict.

    Args:
        pairs: the (new, old) systems compared with the paired bootstrap and randomisation test.
    """
    means = {name: mean_metrics(rows) for name, rows in per_query.items()}
    query_ids = sorted(per_query["base"])
    scores = {name: np.array([rows[q][settings.headline] for q in query_ids]) for name, rows in per_query.items()}
    comparisons = {
        f"{new}_vs_{old}": compare_systems(scores[new], scores[old], settings.bootstrap_resamples, seed)
        for new, old in pairs
    }
    verdict = decide_verdict(comparisons["finetuned_vs_base"], means["base"][settings.headline], settings)
    return {"test_queries": len(query_ids), **means, "delta_finetuned_vs_base": metric_deltas(means["finetuned"], means["base"]),
            "comparisons": comparisons, **verdict}


def announce(report: dict, headline: str) -> None:
    """Print the table, the leakage counts and the verdict; a regression or a suspected leak is printed loudly."""
    for name in [k for k in ("base", "finetuned", "bm25", "hybrid", "concatenated") if k in report]:
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
              f"{f['finetuned'][headline]:.4f}; drop {f[f'drop_{headline}']:+.4f} (95% CI of the change {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})")
    print_verdict_banner(report, headline)


def main(argv: list[str] | None = None) -> None:
    paths = parse_round(argv)  # round N > 1 evaluates models/roundN and also compares it with round N-1
    previous = f"round{paths.number - 1}" if paths.number > 1 else None
    params = load_params()
    base, settings = params.base, params.evaluate
    corpus = read_corpus(CORPUS_FILE)
    queries, qrels = read_split(SPLIT_DIR / "test")
    finetuned = load_model_with(base, str(paths.model), key=None)
    stored = {
        "base": load_embeddings(BASE_EMBEDDINGS_DIR, corpus),
        "finetuned": corpus_embeddings(finetuned, str(paths.model), corpus, base),
    }
    table, curve = "query_id,system\n", "k\n"
    if not queries:
        report = {"test_queries": 0, "corpus_documents": len(corpus)}
        print("evaluate: the dataset has no labelled test queries, so no quality metric was computed. "
              "Add queries.jsonl and qrels to the dataset folder to compare base and fine-tuned models.")
    else:
        depth = retrieval_depth(settings, len(corpus))
        query_ids = sorted(queries)
        query_texts = [queries[q] for q in query_ids]
        models = {"base": load_model_with(base), "finetuned": finetuned}
        query_vectors = {n: encode(m, query_texts, base.query_prompt, base.encode_batch_size, progress=False) for n, m in models.items()}
        runs = system_runs(query_ids, query_texts, query_vectors, corpus, stored, settings, depth, base.search_chunk_size)
        if previous:
            previous_model = load_model_with(base, str(paths.miner_model), key=None)
            previous_vectors = encode(previous_model, query_texts, base.query_prompt, base.encode_batch_size, progress=False)
            runs[previous] = rank_corpus(query_ids, previous_vectors, load_embeddings(paths.miner_embeddings, corpus), depth,
                                         base.search_chunk_size)
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
            if previous:
                report[f"delta_finetuned_vs_{previous}"] = metric_deltas(report["finetuned"], report[previous])
            anchors = sorted({row["anchor"] for row in read_records(PAIRS_DIR / "pairs.jsonl")})
            anchor_vectors = encode(finetuned, anchors, base.query_prompt, base.encode_batch_size, progress=False)
            report["leakage"], leaked = count_leaks(queries, anchors, query_vectors["finetuned"], anchor_vectors, settings.leak_similarity)
            forgetting = forgetting_report(Path(settings.out_of_domain_dir), models, base, settings)
            if forgetting:
                report["forgetting"] = forgetting
            table, curve = per_query_table(per_query), recall_curve(qrels, runs, depth)
            announce(report, settings.headline)
            if previous:
                c = report["comparisons"][f"finetuned_vs_{previous}"]
                print(f"evaluate: round {paths.number} - {previous} {settings.headline} = {c['difference']:+.4f} "
                      f"(95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, p = {c['p_value']:.4f})")
            if leaked:
                print(f"evaluate: leaked test query ids (first 5): {', '.join(leaked[:5])}")
    if previous:
        report["round"] = paths.number
    save_embeddings(paths.model_embeddings, stored["finetuned"])
    write_text_atomic(paths.metrics / "evaluate_per_query.csv", table)
    write_text_atomic(paths.plots / "recall_at_k.csv", curve)
    write_json_atomic(paths.metrics / "evaluate.json", report)


if __name__ == "__main__":
    run_stage(main)
