"""Write BENCHMARKS.md from the result files in bench/results/ (made by run_pipeline.py and scale.py).

Usage:
    python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.params import EvaluateParams  # noqa: E402
from stages.statistics import compare_systems  # noqa: E402
from stages.verdict import decide_verdict  # noqa: E402

RESULTS = ROOT / "bench" / "results"
METRICS = ("ndcg@10", "recall@100", "mrr@10")
CONFIG_LABELS = {
    "plain": "plain recipe (MNRL, labelled pairs, batch 32, 1 epoch, lr 2e-5)",
    "default": "template default pipeline",
    "corpus_only": "template, corpus-only (no labelled queries)",
}


def paired(new: dict[str, float], old: dict[str, float], seed: int = 42) -> dict:
    """Paired bootstrap comparison of two per-query score maps over their common queries."""
    ids = sorted(set(new) & set(old))
    return compare_systems(np.array([new[q] for q in ids]), np.array([old[q] for q in ids]), resamples=10_000, seed=seed)


def cell(value: float, comparison: dict | None) -> str:
    if comparison is None:
        return f"{value:.4f}"
    return f"{value:.4f} ({comparison['difference']:+.4f} [{comparison['ci_low']:+.4f}, {comparison['ci_high']:+.4f}])"


def machine_line(result: dict) -> str:
    m = result["machine"]
    return f"{m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}, Python {m['python']}; {result['date']}"


def quality_section(runs: dict[str, dict], dataset: str) -> list[str]:
    reference = runs.get("default") or next(iter(runs.values()))
    base_scores = reference["per_query"]["base"]
    lines = [f"## Quality on {dataset} (test split, {reference['evaluate']['test_queries']} queries)", "",
             "Each cell: the score, then in brackets the difference to the base model and its paired bootstrap 95% "
             "interval (10,000 resamples over queries).", "",
             "| system | nDCG@10 | Recall@100 | MRR@10 |", "|---|---|---|---|"]
    lines.append("| base all-MiniLM-L6-v2, zero-shot | " + " | ".join(f"{reference['evaluate']['base'][m]:.4f}" for m in METRICS) + " |")
    for name in ("plain", "default", "corpus_only"):
        if name in runs:
            scores = runs[name]["per_query"]["finetuned"]
            lines.append(f"| {CONFIG_LABELS[name]} | " + " | ".join(
                cell(runs[name]["evaluate"]["finetuned"][m], paired(scores[m], runs[name]["per_query"]["base"][m])) for m in METRICS) + " |")
    for system, label in (("bm25", "BM25 (bm25s)"), ("hybrid", "hybrid: default fine-tuned + BM25, RRF")):
        scores = reference["per_query"][system]
        lines.append(f"| {label} | " + " | ".join(cell(reference["evaluate"][system][m], paired(scores[m], base_scores[m])) for m in METRICS) + " |")
    if "default" in runs and "plain" in runs:
        c = paired(runs["default"]["per_query"]["finetuned"]["ndcg@10"], runs["plain"]["per_query"]["finetuned"]["ndcg@10"])
        lines += ["", f"Default minus plain recipe, nDCG@10: {c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, "
                  f"randomisation p = {c['p_value']:.4f}; {c['wins']} queries won, {c['ties']} tied, {c['losses']} lost)."]
    verdicts = {n: decide_verdict(paired(r["per_query"]["finetuned"]["ndcg@10"], r["per_query"]["base"]["ndcg@10"]),
                                  r["evaluate"]["base"]["ndcg@10"], EvaluateParams())["verdict"] for n, r in runs.items()}
    lines += ["", "Verdict by the current rule (`stages/verdict.py`, default thresholds) on these intervals: "
              + ", ".join(f"{n}: **{v}**" for n, v in verdicts.items()) + "."]
    lines += ["", "Commands (one run each, on " + machine_line(reference) + "):", ""]
    lines += [f"    {r['command']}" for r in runs.values()]
    return lines


def speed_section(runs: dict[str, dict]) -> list[str]:
    names = [n for n in ("plain", "default", "corpus_only") if n in runs]
    lines = ["## Speed and memory (same machine, one session)", "",
             "Wall seconds and peak resident memory (MB) of each stage's process, from `dvc repro --single-item <stage>`.", "",
             "| stage | " + " | ".join(names) + (" | default / plain |" if "plain" in runs and "default" in runs else " |"),
             "|---|" + "---|" * len(names) + ("---|" if "plain" in runs and "default" in runs else "")]
    for stage in runs[names[0]]["stages"]:  # the stages of the code version that produced the results
        row = [f"{runs[n]['stages'][stage]['wall_s']:.0f} s, {runs[n]['stages'][stage]['peak_rss_mb']:.0f} MB" for n in names]
        if "plain" in runs and "default" in runs:
            d, p = runs["default"]["stages"][stage], runs["plain"]["stages"][stage]
            row.append(f"{d['wall_s'] / max(p['wall_s'], 0.1):.2f}× time, {d['peak_rss_mb'] / p['peak_rss_mb']:.2f}× memory")
        lines.append(f"| {stage} | " + " | ".join(row) + " |")
    total = [f"**{runs[n]['total_wall_s'] / 60:.1f} min**" for n in names]
    if "plain" in runs and "default" in runs:
        total.append(f"{runs['default']['total_wall_s'] / runs['plain']['total_wall_s']:.2f}×")
    lines.append("| whole pipeline | " + " | ".join(total) + " |")
    pps = [f"{runs[n]['train'].get('pairs_per_second', 0):.2f} ({runs[n]['train'].get('train_rows', 0)} rows, {runs[n]['train'].get('steps', 0)} steps)" for n in names]
    if "plain" in runs and "default" in runs:
        pps.append(f"{runs['default']['train']['pairs_per_second'] / runs['plain']['train']['pairs_per_second']:.2f}×")
    lines.append("| training pairs / s | " + " | ".join(pps) + " |")
    lines.append("")
    for name in names:
        r = runs[name]
        if "noop_repro" in r:
            lines.append(f"- {name}: `dvc repro` with nothing changed: {r['noop_repro']['wall_s']:.1f} s; "
                         f"after changing only `truncate_eval.dims`: {r['truncate_only_repro']['wall_s']:.1f} s (only `truncate_eval` reruns).")
    return lines


def scale_section(scale: dict) -> list[str]:
    rows = scale["rows"]
    lines = ["## Scale: encode and exact search", "",
             f"Synthetic documents of 2 random SciFact sentences each (max_seq_length {rows[0]['max_seq_length']}), "
             f"{rows[0]['queries']} queries, top-100, each size in a fresh process on {machine_line(scale)}. "
             "The ratio column runs the plain calls second in the same process, so the template's encode also paid "
             "the first-call warm-up.", "",
             f"    {scale['command']}", "",
             "| documents | encode | docs / s | embeddings | search (all queries) | peak RSS | template / plain ST (encode, search) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['encode_ratio_to_plain']:.2f}×, {r['search_ratio_to_plain']:.2f}×" if "encode_ratio_to_plain" in r else "—"
        lines.append(f"| {r['documents']:,} | {r['encode_s']:.0f} s | {r['encode_docs_per_s']:.0f} | {r['embeddings_mb']:.1f} MB | "
                     f"{r['search_s']:.2f} s | {r['peak_rss_mb']:.0f} MB | {ratio} |")
    last = rows[-1]
    per_doc_s = last["encode_s"] / last["documents"]
    search_per_doc = last["search_s"] / last["documents"]
    lines += ["", "Extrapolated to 1M documents (linear in corpus size, from the largest run):", "",
              f"- float32 embeddings: {1_000_000 * 384 * 4 / 2**30:.2f} GiB (384 dims); int8 0.36 GiB; binary 0.045 GiB.",
              f"- encoding: about {1_000_000 * per_doc_s / 3600:.1f} h on this CPU (throughput is flat from 10k to 100k); "
              "no GPU was lent to this task, so there is no GPU figure.",
              f"- memory: peak RSS grew from {rows[0]['peak_rss_mb'] / 1024:.2f} to {last['peak_rss_mb'] / 1024:.2f} GB while the "
              f"embeddings grew from {rows[0]['embeddings_mb']:.0f} to {last['embeddings_mb']:.0f} MB, so most of the peak is "
              "encoding overhead that grows with the corpus; extrapolated, a 1M-document corpus wants encoding in shards.",
              f"- exact search of {last['queries']} queries: about {1_000_000 * search_per_doc:.0f} s, with memory bounded by "
              "`base.search_chunk_size` rows at a time.",
              "- Exact search stays fine while the embeddings fit in RAM and queries are batched; past a few million documents, "
              "or for interactive per-query latency, an approximate index (FAISS IVF/HNSW) takes over."]
    return lines


def eval_speed_section(speed: dict) -> list[str]:
    lines = ["## Evaluation speed: template vs InformationRetrievalEvaluator", "",
             f"all-MiniLM-L6-v2 on each dataset's test queries, both in one process on {machine_line(speed)}.", "",
             f"    {speed['command']}", "",
             "| dataset | documents | queries | template (encode corpus + evaluate) | template (stored corpus embeddings) | InformationRetrievalEvaluator | nDCG@10 template / evaluator |",
             "|---|---|---|---|---|---|---|"]
    for r in speed["rows"]:
        lines.append(f"| {Path(r['dataset']).name} | {r['documents']:,} | {r['queries']} | {r['template_encode_corpus_and_evaluate_s']:.1f} s "
                     f"({r['ratio_full']:.2f}×) | {r['template_with_stored_corpus_embeddings_s']:.2f} s ({r['ratio_with_stored_embeddings']:.3f}×) | "
                     f"{r['information_retrieval_evaluator_s']:.1f} s | {r['ndcg@10']['template']:.4f} / {r['ndcg@10']['evaluator']:.4f} |")
    lines += ["", "The `evaluate` stage reuses the base model's corpus embeddings stored by `mine_negatives`, so for the "
              "base model it pays only the stored-embeddings column."]
    return lines


def sample_section(run: dict) -> list[str]:
    """The shipped pipeline on the embedded sample: the repo's own metrics files and the timed `dvc repro`."""
    evaluate = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
    train = json.loads((ROOT / "metrics" / "train.json").read_text())
    c = evaluate["comparisons"]["finetuned_vs_base"]
    lines = ["## The embedded sample (stdlib docstrings)", "",
             f"`{run['command']}` on {machine_line(run)}: **{run['wall_s'] / 60:.1f} min** wall time for the whole "
             f"pipeline, peak memory {run['peak_rss_mb'] / 1024:.1f} GB (the train stage); training "
             f"{train['train_rows']:,} rows in {train['steps']} steps at {train['pairs_per_second']:.2f} pairs/s. "
             f"{evaluate['test_queries']} test queries.", "",
             "| system | " + " | ".join(evaluate["base"]) + " |", "|---|" + "---|" * len(evaluate["base"])]
    for system in ("base", "finetuned", "bm25", "hybrid"):
        lines.append(f"| {system} | " + " | ".join(f"{evaluate[system][m]:.4f}" for m in evaluate["base"]) + " |")
    lines += ["", f"Fine-tuned minus base, nDCG@10: {c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, "
              f"p = {c['p_value']:.4f}; {c['wins']} won, {c['ties']} tied, {c['losses']} lost); verdict **{evaluate['verdict']}**. "
              f"Leakage: {evaluate['leakage']['exact']} verbatim, {evaluate['leakage']['normalised']} normalised, "
              f"{evaluate['leakage']['near_duplicate']} near-duplicate test queries."]
    truncate = json.loads((ROOT / "metrics" / "truncate.json").read_text())
    dims = sorted(truncate["base"], key=int, reverse=True)
    lines += ["", "nDCG@10 by width and precision (`metrics/truncate.json`), with retention of the full-width float32 score:", "",
              "| model | " + " | ".join(dims) + " |", "|---|" + "---|" * len(dims)]
    for model in ("base", "finetuned"):
        for precision in ("float32", "int8", "binary"):
            cells = [truncate[model][d][precision] for d in dims]
            lines.append(f"| {model} {precision} | " + " | ".join(f"{x['ndcg@10']:.4f} ({x['retention_ndcg@10_pct']:.0f}%)" for x in cells) + " |")
    lines.append("| bytes per vector (float32 / int8 / binary) | " + " | ".join(
        " / ".join(str(truncate["base"][d][p]["bytes_per_vector"]) for p in ("float32", "int8", "binary")) for d in dims) + " |")
    return lines


def main() -> None:
    by_dataset: dict[str, dict[str, dict]] = {}
    for path in sorted(RESULTS.glob("*-*.json")):
        result = json.loads(path.read_text())
        by_dataset.setdefault(Path(result["dataset"]).name, {})[result["config"]] = result
    lines = ["# Benchmarks", "", "Every figure here is measured by the harness in `bench/` (see `bench/README.md`) and "
             "regenerated with `python bench/report.py`. Timings come from one machine in one session; compare ratios, "
             "not absolute seconds, across machines.", ""]
    sample_path = RESULTS / "sample_repro.json"
    if sample_path.exists():
        lines += sample_section(json.loads(sample_path.read_text())) + [""]
    for dataset, runs in sorted(by_dataset.items()):
        lines += quality_section(runs, dataset) + [""] + speed_section(runs) + [""]
    scale_path = RESULTS / "scale.json"
    if scale_path.exists():
        lines += scale_section(json.loads(scale_path.read_text())) + [""]
    speed_path = RESULTS / "eval_speed.json"
    if speed_path.exists():
        lines += eval_speed_section(json.loads(speed_path.read_text())) + [""]
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
