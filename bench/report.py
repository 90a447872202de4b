"""Write BENCHMARKS.md from the result files in bench/results/ (made by the scripts in bench/).

Every figure in BENCHMARKS.md is read from a result file (or, for the embedded sample, from the repo's own
`reports/*.json` and `metrics/*.json`); the prose around it is fixed. A result file that is missing leaves its section out (or says
"not run yet"), and a field a file lacks leaves out its row or cell.

Usage:
    python bench/report.py
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from run_pipeline import STAGES  # a sibling script

from embedft.config import EvaluateParams, ExportParams
from embedft.evaluation import compare_systems, decide_verdict

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results"
METRICS = ("ndcg@10", "recall@100", "mrr@10")
METRIC_NAMES = {"ndcg@10": "nDCG@10", "recall@100": "Recall@100", "mrr@10": "MRR@10"}
RESAMPLES = 10_000
CONFIG_LABELS = {
    "plain": "plain recipe (MNRL on the labelled pairs, no mined negatives, no Matryoshka)",
    "default": "template default pipeline",
    "in_batch_only": "template default, in-batch negatives only (no mined negatives)",
    "corpus_only": "template, corpus-only (no labelled queries)",
    "seq256": "template default, train.max_seq_length 256",
    "hardness": "template default, hardness weighting (hard_negatives, strength 5)",
    "bidirectional": "template default, query->doc and doc->query terms",
}
TRAIN_RECIPES = {
    "plain": "plain sentence-transformers recipe (MNRL on (anchor, positive), default batch sampler, no Matryoshka)",
    "stage": "`train` stage, shipped defaults (one hard negative, MatryoshkaLoss, NO_DUPLICATES batches)",
    "stage_pairs_only": "`train` stage on the plain recipe's work (no negative, no Matryoshka)",
}
FALSE_NEGATIVE_STAGES = {
    "before_filters": "chosen without the score filters",
    "after_filters": "chosen with the score filters (and the cross-encoder, when set)",
    "output": "the real output (every labelled positive excluded)",
}

Cell = Callable[[dict], "str | None"]


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers: reading results, formatting, tables, machine and command lines
# ---------------------------------------------------------------------------------------------------------------


def training_rows(train: dict) -> int:
    """Rows the train stage trained on: `pairs` in current reports/train.json, `train_rows` in older result files."""
    return train.get("pairs", train.get("train_rows", 0))


def load(name: str) -> Any:
    """The parsed result file ``bench/results/<name>``, or None when it does not exist."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None where a level is missing."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def num(value: float | None, spec: str = ".2f", unit: str = "") -> str | None:
    """``value`` formatted with ``spec`` and followed by ``unit``; None stays None (a cell to leave out)."""
    return None if value is None else f"{value:{spec}}{unit}"


def times(value: float | None) -> str | None:
    """A ratio as ``1.23×``."""
    return num(value, ".2f", "×")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


def record_table(records: Sequence[dict], columns: Sequence[tuple[str, Cell]]) -> list[str]:
    """One row per record, one column per ``(header, cell)``; a column no record has a value for is left out, and a
    missing value shows as a dash."""
    cells = [[cell(record) for _, cell in columns] for record in records]
    keep = [i for i in range(len(columns)) if any(row[i] is not None for row in cells)]
    if not keep:
        return []
    return table([columns[i][0] for i in keep], ([row[i] if row[i] is not None else "—" for i in keep] for row in cells))


def key_value_table(header: Sequence[str], rows: Iterable[Sequence[str | None]]) -> list[str]:
    """A table whose rows lacking any value are left out rather than filled in (nothing when none is left)."""
    kept = [list(row) for row in rows if all(value is not None for value in row)]
    return table(header, kept) if kept else []


def machine_line(result: dict, with_date: bool = True) -> str:
    """The machine a result file records (dict or host name, whichever the script wrote), then its date."""
    machine = result.get("machine")
    if isinstance(machine, dict):
        parts = [machine.get("cpu") or machine.get("processor"),
                 num(machine.get("cores"), "d", " cores"),
                 f"GPU: {machine['gpu']}" if "gpu" in machine else None,
                 f"Python {machine['python']}" if "python" in machine else None,
                 f"torch {machine['torch']}" if "torch" in machine else None,
                 f"sentence-transformers {machine['sentence_transformers']}" if "sentence_transformers" in machine else None]
    elif isinstance(machine, str):
        parts = [f"host `{machine}`", num(result.get("cpus"), "d", " CPUs")]
    else:
        parts = []
    text = ", ".join(part for part in parts if part) or "a machine the result file does not describe"
    if with_date:
        text += f"; {result['date']}" if "date" in result else "; date not recorded"
    return text


def provenance(result: dict) -> list[str]:
    """Where and how a result was made: the machine line, then each recorded command as a code line."""
    commands = result.get("commands") or ({"": result["command"]} if "command" in result else {})
    if not commands:
        return [f"Run on {machine_line(result)}; the result file records no command line."]
    lines = [f"Run on {machine_line(result)}:", ""]
    for label, command in commands.items():
        lines += [f"    # {label}"] if label and len(commands) > 1 else []
        lines.append(f"    {command}")
    return lines


def paired(new: dict[str, float], old: dict[str, float], seed: int = 42) -> dict:
    """Paired bootstrap comparison of two per-query score maps over their common queries."""
    ids = sorted(set(new) & set(old))
    return compare_systems(np.array([new[q] for q in ids]), np.array([old[q] for q in ids]), resamples=RESAMPLES, seed=seed)


def cell(value: float, comparison: dict | None) -> str:
    """A score, with its paired difference and interval when ``comparison`` is given."""
    if comparison is None:
        return f"{value:.4f}"
    return f"{value:.4f} ({comparison['difference']:+.4f} [{comparison['ci_low']:+.4f}, {comparison['ci_high']:+.4f}])"


def difference_text(c: dict) -> str:
    """``+0.0123 (95% CI ..., randomisation p = ...; W queries won, T tied, L lost)``."""
    return (f"{c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, randomisation p = {c['p_value']:.4f}; "
            f"{c['wins']} queries won, {c['ties']} tied, {c['losses']} lost)")


def finetuned_comparison(new: dict, old: dict, metric: str = "ndcg@10") -> dict:
    """Paired comparison of two pipeline runs' fine-tuned models on ``metric``."""
    return paired(new["per_query"]["finetuned"][metric], old["per_query"]["finetuned"][metric])


def gain_over_base(run: dict, metric: str = "ndcg@10") -> dict:
    """Paired comparison of a pipeline run's fine-tuned model against its base model on ``metric``."""
    return paired(run["per_query"]["finetuned"][metric], run["per_query"]["base"][metric])


def ordered_configs(runs: dict[str, dict]) -> list[str]:
    """The configurations present, known ones in CONFIG_LABELS order, then any others by name."""
    return [n for n in CONFIG_LABELS if n in runs] + sorted(n for n in runs if n not in CONFIG_LABELS)


# ---------------------------------------------------------------------------------------------------------------
# The embedded sample
# ---------------------------------------------------------------------------------------------------------------


def sample_section(run: dict) -> list[str]:
    """The shipped pipeline on the embedded sample: the repo's own reports and the timed `dvc repro` (its wall time,
    peak memory and training throughput, from bench/results/sample_repro.json: run measurements are no metrics)."""
    evaluate = json.loads((ROOT / "reports" / "evaluate.json").read_text())
    train = json.loads((ROOT / "reports" / "train.json").read_text())
    c = evaluate["comparisons"]["finetuned_vs_base"]
    lines = ["## The embedded sample (stdlib docstrings)", "",
             f"`{run['command']}` on {machine_line(run)}: **{run['wall_s'] / 60:.1f} min** wall time for the whole "
             f"pipeline, peak memory {run['peak_rss_mb'] / 1024:.1f} GB (the train stage); training "
             f"{training_rows(train):,} rows in {train['steps']} steps"
             + (f" at {run['train_pairs_per_second']:.2f} pairs/s" if "train_pairs_per_second" in run else "") + ". "
             f"{evaluate['test_queries']} test queries.", ""]
    lines += table(["system", *evaluate["base"]],
                   ([system, *(f"{evaluate[system][m]:.4f}" for m in evaluate["base"])]
                    for system in ("base", "finetuned", "bm25", "hybrid", "hybrid_rrf") if system in evaluate))
    lines += ["", f"Fine-tuned minus base, nDCG@10: {c['difference']:+.4f} (95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, "
              f"p = {c['p_value']:.4f}; {c['wins']} won, {c['ties']} tied, {c['losses']} lost); verdict **{evaluate['verdict']}**. "
              f"Leakage: {evaluate['leakage']['exact']} verbatim, {evaluate['leakage']['normalised']} normalised, "
              f"{evaluate['leakage']['near_duplicate']} near-duplicate test queries."]
    return lines + sample_pairs_lines() + sample_truncate_lines()


def sample_pairs_lines() -> list[str]:
    """The training pairs `synthesize` kept per source on the sample (`reports/synthesize.json`)."""
    path = ROOT / "reports" / "synthesize.json"
    if not path.exists():
        return []
    synth = json.loads(path.read_text())
    if "sources" in synth:  # current metrics: per source, pairs in and kept
        kept = ", ".join(f"{source} {counts['kept']:,} of {counts['in']:,}" for source, counts in synth["sources"].items()
                         if counts["in"])
    else:
        kept = ", ".join(f"{source} {count:,} of {synth['candidates'].get(source, count):,}" for source, count in synth["kept"].items())
    dropped = ", ".join(f"{reason} {count:,}" for reason, count in synth.get("dropped", {}).items() if count) or "none"
    return ["", f"Training pairs (`reports/synthesize.json`), kept of the candidates per source: {kept}; dropped by "
            f"filter: {dropped}; {synth['total_pairs']:,} pairs in all."]


def sample_truncate_lines() -> list[str]:
    """nDCG@10 by Matryoshka width and precision on the sample (`reports/truncate.json`)."""
    truncate = json.loads((ROOT / "reports" / "truncate.json").read_text())
    dims = sorted(truncate["base"], key=int, reverse=True)
    rows = [[f"{model} {precision}", *(f"{truncate[model][d][precision]['ndcg@10']:.4f} "
                                       f"({truncate[model][d][precision]['retention_ndcg@10_pct']:.0f}%)" for d in dims)]
            for model in ("base", "finetuned") for precision in ("float32", "int8", "binary")]
    rows.append(["bytes per vector (float32 / int8 / binary)",
                 *(" / ".join(str(truncate["base"][d][p]["bytes_per_vector"]) for p in ("float32", "int8", "binary")) for d in dims)])
    return ["", "nDCG@10 by width and precision (`reports/truncate.json`), with retention of the full-width float32 score:", "",
            *table(["model", *dims], rows)]


# ---------------------------------------------------------------------------------------------------------------
# A BEIR dataset under the run_pipeline.py configurations
# ---------------------------------------------------------------------------------------------------------------


def comparison_systems(evaluate: dict) -> list[tuple[str, str]]:
    """BM25 and the hybrids with their labels: results from before `hybrid_rrf` existed call the RRF hybrid `hybrid`."""
    if "hybrid_rrf" not in evaluate:
        return [("bm25", "BM25 (bm25s)"), ("hybrid", "hybrid: default fine-tuned + BM25, RRF")]
    return [("bm25", "BM25 (bm25s)"), ("hybrid", "hybrid: default fine-tuned + BM25, weight chosen on dev"),
            ("hybrid_rrf", "hybrid: default fine-tuned + BM25, RRF")]


def quality_section(runs: dict[str, dict], dataset: str) -> list[str]:
    """Quality of every configuration against the base model, BM25 and the hybrid, with paired intervals."""
    reference = runs.get("default") or next(iter(runs.values()))
    base_scores = reference["per_query"]["base"]
    rows = [["base model, zero-shot", *(f"{reference['evaluate']['base'][m]:.4f}" for m in METRICS)]]
    for name in ordered_configs(runs):
        run = runs[name]
        rows.append([CONFIG_LABELS.get(name, name), *(cell(run["evaluate"]["finetuned"][m], gain_over_base(run, m)) for m in METRICS)])
    for system, label in comparison_systems(reference["evaluate"]):
        rows.append([label, *(cell(reference["evaluate"][system][m], paired(reference["per_query"][system][m], base_scores[m]))
                              for m in METRICS)])
    lines = [f"## Quality on {dataset} (test split, {reference['evaluate']['test_queries']} queries)", "",
             "Each cell: the score, then in brackets the difference to the base model and its paired bootstrap 95% "
             f"interval ({RESAMPLES:,} resamples over queries).", "",
             *table(["system", *(METRIC_NAMES[m] for m in METRICS)], rows)]
    if "default" in runs and "plain" in runs:
        lines += ["", "Default minus plain recipe, nDCG@10: " + difference_text(finetuned_comparison(runs["default"], runs["plain"])) + "."]
    verdicts = {n: decide_verdict(gain_over_base(r), r["evaluate"]["base"]["ndcg@10"], EvaluateParams())["verdict"]
                for n, r in runs.items()}
    lines += ["", "Verdict by the current rule (`embedft/evaluation/verdict.py`, default thresholds) on these intervals: "
              + ", ".join(f"{n}: **{verdicts[n]}**" for n in ordered_configs(runs)) + "."]
    return lines + quality_reading(runs) + ["", *run_list(runs)]


def quality_reading(runs: dict[str, dict]) -> list[str]:
    """What limits the fine-tuned model in these CPU runs, and what the corpus-only run says."""
    labelled = dig(runs, "default", "synthesize", "kept", "labelled")
    lines = ["", "**What limits the default here.** Few labelled training queries"
             + (f" ({labelled:,} labelled training pairs in `default`)" if labelled else "")
             + "; a short schedule at a training sequence length that truncates most abstracts, and a cap on "
             "title→abstract pairs (`synthesize.max_structure_pairs_per_source`), both chosen to keep the whole "
             "pipeline short on a small CPU (a GPU run with the `GPU:` values commented in `params.yaml` lifts them); "
             "and a small base model with a short input window."]
    if "corpus_only" in runs:
        c = gain_over_base(runs["corpus_only"])
        lines += ["", "**Corpus-only training** (no labelled queries), fine-tuned minus base, nDCG@10: " + difference_text(c) + "."]
        if c["ci_low"] <= 0 <= c["ci_high"]:
            lines[-1] += (" No measurable gain: on a dataset whose titles read much like its queries, title→abstract "
                          "pairs alone teach the base model little it did not know. Without labels, add generated "
                          "queries (`synthesize.llm` or `synthesize.local_generator`) before expecting a gain; the "
                          "verdict says so rather than shipping.")
    return lines


def run_list(runs: dict[str, dict]) -> list[str]:
    """The command, date and params overrides of each configuration's run (the machine once if they share one)."""
    machines = {machine_line(r, with_date=False) for r in runs.values()}
    shared = len(machines) == 1
    lines = ["Commands (one run each" + (f", on {machines.pop()}" if shared else "") + "; the template's commit where "
             "the result file records it: a run without one predates the current code):", ""]
    for name in ordered_configs(runs):
        run = runs[name]
        overrides = [f"`{section}.{key}={value}`" for section, values in run.get("overrides", {}).items() for key, value in values.items()]
        where = run.get("date", "date not recorded") if shared else machine_line(run)
        where += f", code {run['code_version']}" if "code_version" in run else ", commit not recorded"
        lines.append(f"- `{run['command']}` ({where})" + ("; overrides of `params.yaml`: " + ", ".join(overrides) if overrides else "")
                     + (f". Note: {run['note']}" if "note" in run else ""))
    return lines


OPTION_CONFIGS = ("seq256", "hardness", "bidirectional")
"""The configurations that each change one training option against `default` (issue 15's side-by-side table)."""


def options_section(runs: dict[str, dict], dataset: str) -> list[str]:
    """Each training option against the default on the same code: the fine-tuned model's and the shipped system's
    nDCG@10 with the paired interval against the default's, the whole run's and the train stage's wall time, and
    whether the interval says it helps."""
    default = runs.get("default")
    options = [name for name in OPTION_CONFIGS if name in runs]
    lines = [f"## Training options against the default ({dataset})", "",
             "Each configuration changes one thing in `default` (its override is in the commands above). A default "
             "changes only where the fine-tuned model's interval against `default` lies above zero and the sample "
             "does not get worse. Shipped: the system evaluate recommends, scored against `default`'s shipped system.", ""]
    if default is None or not options:
        missing = " ".join(name for name in OPTION_CONFIGS if name not in runs)
        folder = default["dataset"] if default else "<BEIR folder>"
        return lines + [f"Not run yet: `python bench/run_pipeline.py --dataset {folder} --configs {missing}`."]
    rows = []
    for name in options:
        run = runs[name]
        tuned = finetuned_comparison(run, default)
        shipped, default_shipped = run["evaluate"]["shipped"]["system"], default["evaluate"]["shipped"]["system"]
        shipped_c = paired(run["per_query"][shipped]["ndcg@10"], default["per_query"][default_shipped]["ndcg@10"])
        helps = "yes" if tuned["ci_low"] > 0 else ("worse" if tuned["ci_high"] < 0 else "no (interval includes zero)")
        rows.append([CONFIG_LABELS.get(name, name), cell(run["evaluate"]["finetuned"]["ndcg@10"], tuned),
                     f"{shipped}: " + cell(run["evaluate"]["shipped"]["test_ndcg@10"], shipped_c),
                     f"{run['total_wall_s'] / 60:.1f} min ({run['total_wall_s'] / default['total_wall_s']:.2f}×)",
                     f"{run['stages']['train']['wall_s'] / 60:.1f} min "
                     f"({run['stages']['train']['wall_s'] / default['stages']['train']['wall_s']:.2f}×)", helps])
    reference = ["template default (reference)", f"{default['evaluate']['finetuned']['ndcg@10']:.4f}",
                 f"{default['evaluate']['shipped']['system']}: {default['evaluate']['shipped']['test_ndcg@10']:.4f}",
                 f"{default['total_wall_s'] / 60:.1f} min", f"{default['stages']['train']['wall_s'] / 60:.1f} min", "—"]
    lines += table(["configuration", "fine-tuned nDCG@10 (− default, 95% CI)", "shipped nDCG@10 (− default's, 95% CI)",
                    "whole pipeline (× default)", "train stage (× default)", "helps?"], [reference, *rows])
    missing = [name for name in OPTION_CONFIGS if name not in runs]
    if missing:
        lines += ["", "Not run yet: " + ", ".join(f"`{name}`" for name in missing) + "."]
    return lines


def hard_negatives_section(runs: dict[str, dict], dataset: str) -> list[str]:
    """What mined hard negatives add over in-batch negatives alone, and the false-negative audit of the mining."""
    lines = [f"## Hard negatives: mined vs in-batch only ({dataset})", "",
             "`in_batch_only` is the default pipeline with `mine_negatives.num_negatives: 0`: each pair learns only "
             "from the other pairs' positives in its batch. Against `default`, it shows what the mined negatives add "
             "on this dataset; an interval that includes zero means this test split cannot tell the two apart.", ""]
    if "default" not in runs:
        return lines + ["`default`: not run yet."]
    if "in_batch_only" in runs:
        lines += mined_vs_in_batch(runs["default"], runs["in_batch_only"])
    else:
        lines.append(f"`in_batch_only`: not run yet (`python bench/run_pipeline.py --dataset {runs['default']['dataset']} "
                     "--configs in_batch_only`).")
    return lines + ["", *false_negative_lines(runs["default"])]


def mined_vs_in_batch(mined: dict, in_batch: dict) -> list[str]:
    """Fine-tuned quality with and without mined negatives, and their paired difference per metric."""
    rows = []
    for m in METRICS:
        c = finetuned_comparison(mined, in_batch, m)
        rows.append([METRIC_NAMES[m], f"{mined['evaluate']['finetuned'][m]:.4f}", f"{in_batch['evaluate']['finetuned'][m]:.4f}",
                     f"{c['difference']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]", f"{c['p_value']:.4f}",
                     f"{c['wins']} / {c['ties']} / {c['losses']}"])
    lines = table(["metric", "mined negatives (default)", "in-batch only", "mined − in-batch (95% CI)", "randomisation p",
                   "queries won / tied / lost"], rows)
    rates = [dig(run, "train", "pairs_per_second") for run in (mined, in_batch)]
    if all(rates):
        lines += ["", f"Training: {rates[0]:.2f} pairs/s with mined negatives, {rates[1]:.2f} without ({rates[0] / rates[1]:.2f}×): "
                  "the negative adds a third text to every pair's forward pass."]
    return lines


def false_negative_lines(default: dict) -> list[str]:
    """The false-negative audit of the `default` run's mining (the `false_negatives` block of reports/mine.json)."""
    mine = default.get("mine", {})
    audit = mine.get("false_negatives")
    lines = mining_counts_lines(mine)
    if not audit:
        return lines + ["The `default` result file has no `false_negatives` block in its `mine` results (it predates the "
                        "audit): rerun `default` to fill in the false-negative rates."]
    lines += ["False negatives, with the labels as the oracle: for every pair whose anchor is a labelled train query "
              "the selection is repeated with the miner told only the pair's own positive, so the query's *other* "
              "labelled positives stand in for the unlabelled positives every corpus has. The rate is the share of "
              "chosen negatives the qrels call relevant.", ""]
    lines += key_value_table(["selection", "negatives chosen", "labelled relevant", "false-negative rate"],
                             ([label, num(dig(audit, stage, "negatives"), ",d"), num(dig(audit, stage, "labelled_relevant"), ",d"),
                               num(dig(audit, stage, "rate"), ".4f")] for stage, label in FALSE_NEGATIVE_STAGES.items()))
    return lines + ["", *dense_filter_lines(audit)]


def mining_counts_lines(mine: dict) -> list[str]:
    """One line of what the mining wrote and dropped, from whichever counts the result file holds."""
    written = mine.get("negatives_written", mine.get("negatives_from_window"))
    parts = [num(written, ",d", " negatives written"), num(mine.get("pairs"), ",d", " pairs"),
             num(mine.get("short_pairs"), ",d", " pairs short of `num_negatives`"),
             num(mine.get("pairs_without_negative"), ",d", " pairs without any negative")]
    dropped = ", ".join(f"{reason} {count:,}" for reason, count in mine.get("dropped", {}).items())
    text = "; ".join(part for part in parts if part) + (f"; candidates dropped per filter: {dropped}" if dropped else "")
    return [f"Mining in `default`: {text}.", ""] if text else []


def dense_filter_lines(audit: dict) -> list[str]:
    """The audit's pair counts and what the dense score filters catch, and at what price."""
    counts = [num(audit.get("audited_pairs"), ",d", " audited pairs"),
              num(audit.get("audited_pairs_with_other_labelled_positives"), ",d", " of them with another labelled positive"),
              num(audit.get("window_labelled_relevant"), ",d", " such positives inside a candidate window")]
    lines = ["; ".join(c for c in counts if c) + "." if any(counts) else ""]
    catch, price = audit.get("dense_filters_catch_rate"), audit.get("dense_filters_drop_rate_others")
    if catch is not None and price is not None:
        lines[0] += (f" The dense score filters dropped {catch:.1%} of those labelled positives, at the price of "
                     f"{price:.1%} of the other candidates.")
    lines += ["", "Reading: `output` is 0 by construction (the miner excludes every labelled positive it knows). The gap "
              "between the first two rows is what the score filters save; a filter that catches labelled positives it "
              "was not told about is the evidence that it catches unlabelled ones too. The measure needs queries with "
              "more than one labelled positive; with few such queries it is thin evidence."]
    return lines


def speed_section(runs: dict[str, dict]) -> list[str]:
    """Wall time and peak memory per stage of every configuration, with default / plain ratios."""
    names = ordered_configs(runs)
    both = "plain" in runs and "default" in runs
    present = {stage for run in runs.values() for stage in run["stages"]}
    stages = [s for s in STAGES if s in present] + sorted(present - set(STAGES))
    rows = [[stage, *(stage_cell(runs[n]["stages"].get(stage)) for n in names)]
            + ([stage_ratio(runs["default"]["stages"].get(stage), runs["plain"]["stages"].get(stage))] if both else [])
            for stage in stages]
    total = [f"**{runs[n]['total_wall_s'] / 60:.1f} min**" for n in names]
    rows.append(["whole pipeline", *total] + ([times(runs["default"]["total_wall_s"] / runs["plain"]["total_wall_s"])] if both else []))
    pps = [f"{runs[n]['train'].get('pairs_per_second', 0):.2f} ({training_rows(runs[n]['train'])} rows, "
           f"{runs[n]['train'].get('steps', 0)} steps)" for n in names]
    rows.append(["training pairs / s", *pps]
                + ([times(runs["default"]["train"]["pairs_per_second"] / runs["plain"]["train"]["pairs_per_second"])] if both else []))
    lines = ["## Speed and memory per stage", "",
             "Wall seconds and peak resident memory (MB) of each stage's process, from `dvc repro --single-item <stage>`; "
             "a dash where a run's code version had no such stage.", "",
             *table(["stage", *names, *(["default / plain"] if both else [])], rows), ""]
    for name in names:
        r = runs[name]
        if "noop_repro" in r:
            lines.append(f"- {name}: `dvc repro` with nothing changed: {r['noop_repro']['wall_s']:.1f} s; "
                         f"after changing only `truncate_eval.dims`: {r['truncate_only_repro']['wall_s']:.1f} s "
                         "(only `truncate_eval` reruns).")
    return lines + speed_reading(runs)


def stage_cell(stage: dict | None) -> str:
    """``123 s, 456 MB``, or a dash for a stage the run did not have."""
    return "—" if stage is None else f"{stage['wall_s']:.0f} s, {stage['peak_rss_mb']:.0f} MB"


def stage_ratio(new: dict | None, old: dict | None) -> str:
    """Time and memory of a stage in one run relative to another."""
    if new is None or old is None:
        return "—"
    return f"{new['wall_s'] / max(old['wall_s'], 0.1):.2f}× time, {new['peak_rss_mb'] / old['peak_rss_mb']:.2f}× memory"


def speed_reading(runs: dict[str, dict]) -> list[str]:
    """Why the configurations' timings differ."""
    lines = ["", "Reading: the runs shared their machine with other jobs at times, so wall times and pairs/s are "
             "upper bounds; compare runs of one session (the dates are in the commands above). Configurations "
             "with mined negatives train on three texts per row (anchor, positive, negative) instead of two."]
    plain_length = dig(runs, "plain", "overrides", "train", "max_seq_length")
    if plain_length:
        lines[-1] += f" The plain recipe trains at `max_seq_length` {plain_length} (its override above)."
    if any("embed_corpus" not in run["stages"] for run in runs.values()):
        lines[-1] += (" In runs without an `embed_corpus` stage (older code), `mine_negatives` encodes the corpus with "
                      "the base model even when no negatives are mined, because `evaluate` reuses those embeddings.")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Scale: encode, search and mining
# ---------------------------------------------------------------------------------------------------------------


def scale_section(scale: dict) -> list[str]:
    """Encode and exact search on synthetic corpora of growing size, and the extrapolation to 1M documents."""
    rows = scale["rows"]
    columns: list[tuple[str, Cell]] = [
        ("documents", lambda r: f"{r['documents']:,}"),
        ("encode", lambda r: num(r.get("encode_s"), ".0f", " s")),
        ("docs / s", lambda r: num(r.get("encode_docs_per_s"), ".0f")),
        ("embeddings", lambda r: num(r.get("embeddings_mb"), ".1f", " MB")),
        ("search (all queries)", lambda r: num(r.get("search_s"), ".2f", " s")),
        ("peak RSS", lambda r: num(r.get("peak_rss_mb"), ".0f", " MB")),
        ("template / plain ST (encode, search)", lambda r: f"{times(r['encode_ratio_to_plain'])}, {times(r['search_ratio_to_plain'])}"
         if "encode_ratio_to_plain" in r else None),
    ]
    lines = ["## Scale: encode and exact search", "",
             f"Synthetic documents of random SciFact sentences (seeded; max_seq_length {rows[0]['max_seq_length']}), "
             f"{rows[0]['queries']} queries searched exactly for their top hits, each size in a fresh process. "
             "The ratio column runs the plain "
             "calls second in the same process, so the template's encode also paid the first-call warm-up.", "",
             *provenance(scale), "", *record_table(rows, columns)]
    return lines + scale_extrapolation(rows)


def scale_extrapolation(rows: list[dict]) -> list[str]:
    """Linear extrapolation of the largest scale.json run to 1M documents."""
    first, last = rows[0], rows[-1]
    factor = 1_000_000 / last["documents"]
    float32_gib = last["embeddings_mb"] * factor / 1024
    rates = [r["encode_docs_per_s"] for r in rows]
    return ["", "Extrapolated to 1M documents (linear in corpus size, from the largest run):", "",
            f"- embeddings: {float32_gib:.2f} GiB float32, {float32_gib / 4:.2f} GiB int8, {float32_gib / 32:.3f} GiB binary.",
            f"- encoding: about {last['encode_s'] * factor / 3600:.1f} h on this machine (throughput {min(rates):.0f} to "
            f"{max(rates):.0f} docs/s from {first['documents']:,} to {last['documents']:,} documents).",
            f"- memory: peak RSS grew from {first['peak_rss_mb'] / 1024:.2f} to {last['peak_rss_mb'] / 1024:.2f} GB while the "
            f"embeddings grew from {first['embeddings_mb']:.0f} to {last['embeddings_mb']:.0f} MB, so most of the peak is "
            "encoding overhead that grows with the corpus; a 1M-document corpus wants encoding in shards.",
            f"- exact search of {last['queries']} queries: about {last['search_s'] * factor:.0f} s, with memory bounded by "
            "the machine setting `search_chunk_size` rows at a time.",
            "- Exact search stays fine while the embeddings fit in RAM and queries are batched; past a few million documents, "
            "or for interactive per-query latency, an approximate index (FAISS IVF/HNSW) takes over."]


def mine_scale_section(mine: dict) -> list[str]:
    """Hard-negative mining at growing corpus sizes: the whole mining, then search + selection alone."""
    lines = ["## Scale: hard-negative mining", "",
             "Mining encodes the corpus (unless its embeddings are stored) and the anchors, searches each anchor's rank "
             "window and selects negatives through the false-negative filters. Synthetic documents as in the scale "
             "section, each query one sentence of a sampled document (its positive), each size in a fresh process. "
             "The template runs phase by phase; sentence-transformers' `mine_hard_negatives` (plain ST) runs on the "
             "same data in the same process.", "", *provenance(mine)]
    if mine.get("rows"):
        lines += ["", *record_table(mine["rows"], mine_row_columns()), "", *mine_rows_reading(mine["rows"])]
    if mine.get("machinery"):
        lines += ["", *mine_machinery_lines(mine["machinery"])]
    return lines + ["", *mine_growth_lines(mine)]


def mine_row_columns() -> list[tuple[str, Cell]]:
    """The columns of the encode / search / select table of mine_scale.json."""
    return [
        ("documents", lambda r: f"{r['documents']:,}"),
        ("queries", lambda r: num(r.get("queries"), ",d")),
        ("encode corpus (docs / s)", lambda r: f"{r['encode_s']:.0f} s ({r['encode_docs_per_s']:.0f})" if "encode_s" in r else None),
        ("encode queries", lambda r: num(r.get("encode_queries_s"), ".1f", " s")),
        ("exact search (queries / s)", lambda r: f"{r['search_s']:.2f} s ({r['search_queries_per_s']:,.0f})" if "search_s" in r else None),
        ("search working memory / bound", lambda r: f"{r['search_traced_peak_mb']:.0f} / {r['search_memory_mb']:.0f} MB"
         if "search_traced_peak_mb" in r else None),
        ("FAISS Flat search (agreement)", lambda r: f"{r['faiss_flat_search_s']:.2f} s ({r['faiss_flat_agreement']:.4f})"
         if "faiss_flat_search_s" in r else None),
        ("selection", lambda r: num(r.get("select_s"), ".2f", " s")),
        ("peak RSS", lambda r: num(r.get("peak_rss_mb"), ".0f", " MB")),
        ("whole mining: template / plain ST", lambda r: f"{r['template_mine_s']:.0f} s / {r['plain_mine_s']:.0f} s "
         f"({times(r['mine_time_ratio_to_plain'])})" if "plain_mine_s" in r else num(r.get("template_mine_s"), ".0f", " s")),
        ("pairs with a negative: template / plain ST", lambda r: f"{r['pairs_with_negative']:,} / {r['plain_rows_with_negative']:,}"
         if "plain_rows_with_negative" in r else num(r.get("pairs_with_negative"), ",d")),
    ]


def mine_rows_reading(rows: list[dict]) -> list[str]:
    """What the encode / search / select table means."""
    last = rows[-1]
    share = last["encode_s"] / last["template_mine_s"] if last.get("encode_s") and last.get("template_mine_s") else None
    text = ("Encoding the corpus is the same `model.encode` call on both paths and dominates both"
            + (f" ({share:.0%} of the template's mining at {last['documents']:,} documents)" if share else "")
            + ", so the whole-mining ratio mostly shows the machine's load. The search works through blocks of queries "
            "× documents whose traced working memory stays under the machine setting `search_memory_mb`, whatever the corpus size. The "
            "pair counts differ because the template skips the retriever's first `range_min` ranks before its filters, "
            "sentence-transformers after them.")
    return [text]


def mine_machinery_lines(machinery: list[dict]) -> list[str]:
    """Search + selection alone, on identical synthetic unit vectors, template against sentence-transformers."""
    columns: list[tuple[str, Cell]] = [
        ("documents", lambda r: f"{r['documents']:,}"),
        ("queries", lambda r: num(r.get("queries"), ",d")),
        ("template", lambda r: num(r.get("template_seconds"), ".2f", " s")),
        ("plain ST", lambda r: num(r.get("plain_seconds"), ".2f", " s")),
        ("time ratio", lambda r: times(r.get("time_ratio_to_plain"))),
        ("template peak memory", lambda r: num(r.get("template_peak_above_baseline_mb"), ",.0f", " MB")),
        ("plain ST peak memory", lambda r: num(r.get("plain_peak_above_baseline_mb"), ",.0f", " MB")),
        ("memory ratio", lambda r: times(r.get("memory_ratio_to_plain"))),
        ("pairs with a negative: template / plain ST",
         lambda r: f"{r['template_pairs_with_negative']:,} / {r['plain_pairs_with_negative']:,}"
         if "plain_pairs_with_negative" in r else None),
    ]
    return ["What mining adds on top of the embeddings: search and selection with the default filters on identical "
            "synthetic unit vectors (no encoding; sentence-transformers reads them from its embedding cache), each size "
            "and path in its own process; peak memory above the process's baseline; ratios are template / plain ST.", "",
            *record_table(machinery, columns), *machinery_reading(machinery)]


def machinery_reading(machinery: list[dict]) -> list[str]:
    """Time and memory of the template's search + selection against sentence-transformers', smallest to largest."""
    needed = ("time_ratio_to_plain", "template_peak_above_baseline_mb", "plain_peak_above_baseline_mb")
    rows = [r for r in machinery if all(key in r for key in needed)]
    if not rows:
        return []
    first, last = rows[0], rows[-1]
    template_peaks = [r["template_peak_above_baseline_mb"] for r in rows]
    return ["", f"The template takes {times(first['time_ratio_to_plain'])} sentence-transformers' time at {first['documents']:,} "
            f"documents and {times(last['time_ratio_to_plain'])} at {last['documents']:,}: seconds either way, small "
            f"next to encoding. Its peak memory stays between {min(template_peaks):,.0f} and {max(template_peaks):,.0f} MB "
            "because search is bounded by `search_memory_mb`, while sentence-transformers' grows with the corpus "
            f"(from {first['plain_peak_above_baseline_mb']:,.0f} to {last['plain_peak_above_baseline_mb']:,.0f} MB): the "
            "template's mining fits corpora whose similarity scores would not fit in memory at once."]


def mine_growth_lines(mine: dict) -> list[str]:
    """The log-log growth of each measure and its linear extrapolation to 1M documents, when the file has them."""
    growth = {key: fit for key, fit in mine.get("growth", {}).items() if fit}
    sizes = [r["documents"] for r in mine.get("rows", [])]
    if not growth:
        return [f"Growth and the extrapolation to 1M documents are fitted from two or more encode sizes; this file holds "
                f"{len(sizes)} ({', '.join(f'{s:,}' for s in sizes) or 'none'}), so none is shown."]
    unit = {"_s": " s", "_mb": " MB"}
    rows = [[f"`{key}`", f"{fit['loglog_slope']:.2f}",
             "—" if fit.get("at_1m") is None else f"{fit['at_1m']:,.1f}{next((u for s, u in unit.items() if key.endswith(s)), '')}"]
            for key, fit in growth.items()]
    return [f"Growth from {min(sizes):,} to {max(sizes):,} documents: the least-squares slope on log-log scale (1 = "
            "linear in corpus size) and the least-squares line evaluated at 1M documents (a dash where the measure "
            "does not grow measurably).", "", *table(["measure", "log-log slope", "at 1M documents"], rows)]


# ---------------------------------------------------------------------------------------------------------------
# Evaluation, training, export and synthesis speed
# ---------------------------------------------------------------------------------------------------------------


def eval_speed_section(speed: dict) -> list[str]:
    """The template's evaluation against sentence-transformers' InformationRetrievalEvaluator."""
    columns: list[tuple[str, Cell]] = [
        ("dataset", lambda r: Path(r["dataset"]).name),
        ("documents", lambda r: f"{r['documents']:,}"),
        ("queries", lambda r: str(r["queries"])),
        ("template (encode corpus + evaluate)", lambda r: f"{r['template_encode_corpus_and_evaluate_s']:.1f} s ({times(r['ratio_full'])})"),
        ("template (stored corpus embeddings)", lambda r: f"{r['template_with_stored_corpus_embeddings_s']:.2f} s "
         f"({r['ratio_with_stored_embeddings']:.3f}×)"),
        ("InformationRetrievalEvaluator", lambda r: f"{r['information_retrieval_evaluator_s']:.1f} s"),
        ("nDCG@10 template / evaluator", lambda r: f"{r['ndcg@10']['template']:.4f} / {r['ndcg@10']['evaluator']:.4f}"),
    ]
    return ["## Evaluation speed: template vs InformationRetrievalEvaluator", "",
            "all-MiniLM-L6-v2 on each dataset's test queries, both in one process.", "", *provenance(speed), "",
            *record_table(speed["rows"], columns), "",
            "The `evaluate` stage reuses the base model's corpus embeddings stored earlier in the pipeline, so for the "
            "base model it pays only the stored-embeddings column."]


def train_speed_section(cpu: dict | None, gpu: dict | None) -> list[str]:
    """Training pairs/s of the plain sentence-transformers recipe against the `train` stage, on CPU and GPU."""
    measured = [(label, result) for label, result in (("CPU", cpu), ("GPU", gpu)) if result]
    recipes = list(dict.fromkeys(r for _, result in measured for r in result["median_pairs_per_second"]))
    header = ["recipe"] + [h for label, _ in measured for h in (f"{label} pairs/s, median (range)", f"{label} ratio to plain")]
    rows = [[TRAIN_RECIPES.get(recipe, recipe)] + [c for _, result in measured for c in train_speed_cells(result, recipe)]
            for recipe in recipes]
    lines = ["## Training throughput: the `train` stage against the plain recipe", "",
             "`bench/train_speed.py` trains, in one process, on rows of SciFact's labelled train pairs, each with one BM25 "
             "hard negative from the miner's default rank window, the same number of optimizer steps for every recipe. "
             "Pairs per second = steps × batch size / wall time of `trainer.train()`. The recipes alternate in rotating "
             "order over the rounds, so load changes hit all of them; the ratio is of medians, and the range includes "
             "the session's first run, which also pays the warm-up.", "",
             *table(header, rows)]
    for label, result in measured:
        lines += ["", f"**{label}.** " + train_speed_settings(result), "", *provenance(result)]
    return lines + ["", *train_speed_reading(cpu, gpu)]


def train_speed_cells(result: dict, recipe: str) -> list[str]:
    """A recipe's median pairs/s with the range over its runs, and its ratio to the plain recipe."""
    median = result["median_pairs_per_second"].get(recipe)
    if median is None:
        return ["—", "—"]
    rates = [run["pairs_per_second"] for run in result.get("runs", []) if run.get("recipe") == recipe]
    spread = f" ({min(rates):.2f} to {max(rates):.2f}, {len(rates)} runs)" if rates else ""
    ratio = "reference" if recipe == "plain" else times(result.get("ratio_vs_plain", {}).get(recipe)) or "—"
    return [f"{median:.2f}{spread}", ratio]


def train_speed_settings(result: dict) -> str:
    """The model, data and schedule of a train_speed.py run, and the load the machine was under."""
    s = result.get("settings", {})
    parts = [f"`{s['model']}`" + (" with random weights" if s.get("random_weights") else "") if "model" in s else None,
             num(s.get("rows"), ",d", " rows")
             + (f" ({s['rows_with_negative']:,} with a hard negative)" if "rows_with_negative" in s else "")
             if "rows" in s else None,
             num(s.get("batch_size"), "d", " pairs per batch"), num(s.get("learning_rate"), "g", " learning rate"),
             num(s.get("max_seq_length"), "d", " tokens"), num(s.get("steps"), "d", " steps per run"), num(s.get("rounds"), "d", " rounds"),
             f"device `{result['machine']['device']}`" if dig(result, "machine", "device") else None]
    loads = [run[k] for run in result.get("runs", []) for k in ("load_average_before", "load_average_after") if k in run]
    text = ", ".join(p for p in parts if p) + "."
    if loads:
        text += f" 1-minute load average {min(loads):.2f} to {max(loads):.2f} during the runs."
    if s.get("random_weights"):
        text += (" The GPU run uses MiniLM's architecture with random weights: the pretrained weights could not be "
                 "carried to the GPU machine. A step costs the same whatever the weights, so pairs/s hold; no quality "
                 "figure comes from it.")
    if result.get("note"):
        text += f" Note recorded with the run: {result['note']}."
    return text


def train_speed_reading(cpu: dict | None, gpu: dict | None) -> list[str]:
    """What the ratios mean for a user."""
    pairs_only = ", ".join(f"{times(r['ratio_vs_plain']['stage_pairs_only'])} on {label}"
                           for label, r in (("CPU", cpu), ("GPU", gpu)) if r and "stage_pairs_only" in r.get("ratio_vs_plain", {}))
    defaults = ", ".join(f"{times(r['ratio_vs_plain']['stage'])} on {label}"
                         for label, r in (("CPU", cpu), ("GPU", gpu)) if r and "stage" in r.get("ratio_vs_plain", {}))
    return ["Reading: `stage_pairs_only` does the plain recipe's work through the stage (grouped datasets, the batch "
            "sampler, callbacks, checkpoint bookkeeping), so its ratio is what the stage's machinery costs"
            + (f" ({pairs_only})" if pairs_only else "") + "; where a step is short, as on a GPU, that fixed cost per "
            "step weighs more. The default recipe is slower per pair"
            + (f" ({defaults})" if defaults else "") + " because every step also encodes each pair's hard negative: "
            "half as many texts again per step, the price of the hard negatives. Matryoshka reuses the one forward pass."]


def gpu_check_section(checks: list[dict]) -> list[str]:
    """The GPU-only paths of the `train` stage: precision, the default recipe, Cached MNRL + LoRA + checkpointing, OOM."""
    by_name = {c.get("check"): c for c in checks}
    precision = by_name.get("precision", {})
    chosen = [name for name, on in precision.get("auto", {}).items() if on] or ["fp32"]
    lines = ["## GPU path check: precision, memory, Cached MNRL with LoRA, out of memory", "",
             "`bench/train_gpu_check.py` checks on a GPU what the CPU test suite cannot: the precision `train.precision: "
             "auto` picks, the shipped recipe with dev evaluation, a Cached loss with LoRA adapters and gradient "
             "checkpointing together, and a batch far beyond the GPU's memory, which must end in the stage's advice "
             "rather than a traceback. Like the throughput run, it trains MiniLM's architecture with random weights "
             "(the pretrained weights could not be carried to the GPU machine), so the dev scores only show that "
             "training moves them.", "",
             *provenance({"machine": {"gpu": precision["gpu"]}} if "gpu" in precision else {}), ""]
    if precision:
        lines += [f"Precision: `auto` chose **{', '.join(chosen)}** on device `{precision.get('device', '?')}`.", ""]
    trained = [c for c in checks if "steps" in c]
    lines += record_table(trained, gpu_check_columns())
    oom = by_name.get("out_of_memory")
    if oom and oom.get("message"):
        lines += ["", "Out of memory: the stage stopped with this message (no traceback):", "", f"> {oom['message']}"]
    return lines


def gpu_check_columns() -> list[tuple[str, Cell]]:
    """The columns of the training checks of train_gpu_check.json."""
    return [
        ("check", lambda c: f"`{c['check']}`"),
        ("loss", lambda c: c.get("loss")),
        ("steps", lambda c: num(c.get("steps"), "d")),
        ("pairs / s", lambda c: num(c.get("pairs_per_second"), ".1f")),
        ("peak GPU memory", lambda c: num(c.get("peak_gpu_mb"), ",.0f", " MB")),
        ("wall", lambda c: num(c.get("wall_s"), ".1f", " s")),
        ("dev nDCG@10: base → best (step)", lambda c: f"{c['dev']['base']['ndcg@10']:.4f} → {c['dev']['best']['ndcg@10']:.4f} "
         f"({c['dev'].get('best_step', '?')})" if dig(c, "dev", "best", "ndcg@10") is not None else None),
        ("saved model loads back the same",
         lambda c: None if "loads_back_same" not in c else ("yes" if c["loads_back_same"] else "**no**")),
    ]


def onnx_section(onnx: dict) -> list[str]:
    """ONNX (onnxruntime) against PyTorch (SentenceTransformer.encode) encode speed on the CPU."""
    kinds = [k for k, v in onnx.items() if isinstance(v, dict) and "speedup_onnx_vs_pytorch" in v]
    rows = [dict(onnx[k], kind=k) for k in kinds]
    columns: list[tuple[str, Cell]] = [
        ("texts", lambda r: f"{r.get('texts', '?')} {r['kind']}"),
        ("PyTorch texts / s", lambda r: num(r.get("pytorch_texts_per_s"), ".1f")),
        ("ONNX texts / s", lambda r: num(r.get("onnx_texts_per_s"), ".1f")),
        ("ONNX speed-up", lambda r: times(r.get("speedup_onnx_vs_pytorch"))),
        ("largest abs. difference", lambda r: num(r.get("max_abs_diff"), ".1e")),
    ]
    settings = [f"`{onnx['model']}`" if "model" in onnx else None, num(onnx.get("max_seq_length"), "d", " max_seq_length"),
                num(onnx.get("batch_size"), "d", " per batch"), num(onnx.get("threads"), "d", " threads for both engines"),
                num(onnx.get("rounds"), "d", " alternating rounds (median kept)"), num(onnx.get("onnx_megabytes"), ".1f", " MB ONNX file")]
    load = onnx.get("load_average_1min", {})
    text = ", ".join(s for s in settings if s) + "."
    if "before" in load and "after" in load:
        text += f" 1-minute load average {load['before']:.2f} before, {load['after']:.2f} after."
    return ["## ONNX export: CPU encode speed", "",
            "The base model exported by the template's own exporter (`embedft/export/onnx_export.py`, torch.onnx) and run by "
            "`embedft.export.OnnxSentenceEncoder` (onnxruntime, CPU provider), against `SentenceTransformer.encode` "
            "on the same corpus documents and queries of `data/sample` in the same process; both sort texts by length "
            "before batching. Each round times PyTorch then ONNX, so load changes during the run hit both engines. "
            + text, "", *provenance(onnx), "", *record_table(rows, columns), "",
            "Reading: the fine-tuned model has the base model's architecture, so the ratio carries over. ONNX's lead is "
            "the ratio to quote; on a shared machine the absolute rates are low and noisy. The embeddings agree far "
            f"inside the export stage's default tolerance ({ExportParams().tolerance:g}, `export.tolerance`), so "
            "switching engines does not change retrieval."]


def llm_synthesis_section(llm: dict) -> list[str]:
    """The LLM query-generation client: concurrency and caching against a plain loop of openai calls."""
    levels = sorted((int(k.split("_")[1]), v) for k, v in llm.items() if k.startswith("concurrency_"))
    rows = [["plain loop of `client.chat.completions.create`, sequential", num(llm.get("plain_sequential_s"), ".1f", " s"),
             "reference", "—"]]
    rows += [[f"template, concurrency {level}", num(r.get("fresh_s"), ".1f", " s"), times(r.get("speedup_vs_plain")),
              num(r.get("cached_rerun_s"), ".3f", " s")] for level, r in levels]
    settings = [num(llm.get("passages"), "d", " sample passages"),
                num(levels[0][1].get("queries"), "d", " queries written per run") if levels else None,
                num(llm.get("latency_s"), "g", " s fixed latency per request")]
    settings_text = f" ({', '.join(s for s in settings if s)})" if any(settings) else ""
    lines = ["## LLM query generation: concurrency and caching", "",
             "`bench/llm_synthesis.py` asks the test chat-completions server (`embedft.testing.chat_server`) on 127.0.0.1, "
             "which answers every request "
             f"after a fixed delay standing in for an LLM's latency, for queries on sample passages{settings_text}. No "
             "real LLM is called, so these figures are the client's overhead and the effect of concurrency and of the reply cache, "
             "not an LLM's speed.", "",
             *provenance(llm), "", *key_value_table(["run", "wall time", "vs plain loop", "re-run, every reply cached"], rows)]
    return lines + llm_reading(llm)


def llm_reading(llm: dict) -> list[str]:
    """The round-trip filter's cost and what the concurrency figures mean."""
    lines = ["", "Reading: against a latency-bound endpoint the wall time falls almost in proportion to "
             "the machine setting `llm_concurrency` (the ideal speed-up equals the concurrency) up to the endpoint's own rate "
             "limits; at concurrency 1 the template costs what the plain loop does. A re-run reads every reply from the "
             "cache and calls nothing, so changing a filter never pays for the LLM twice."]
    trip = llm.get("round_trip", {})
    if {"queries", "kept", "dropped", "seconds"} <= trip.keys():
        lines += ["", f"The round-trip filter (base model, stored corpus embeddings, k = {trip.get('k', '?')}) over the "
                  f"{trip['queries']} queries written kept {trip['kept']} and dropped {trip['dropped']} in {trip['seconds']:.1f} s, "
                  "model loading included."]
    return lines


# ---------------------------------------------------------------------------------------------------------------


def pipeline_runs() -> dict[str, dict[str, dict]]:
    """The run_pipeline.py results, by dataset name and configuration."""
    by_dataset: dict[str, dict[str, dict]] = {}
    for path in sorted(RESULTS.glob("*-*.json")):
        result = json.loads(path.read_text())
        by_dataset.setdefault(Path(result["dataset"]).name, {})[result["config"]] = result
    return by_dataset


SECTIONS: list[tuple[tuple[str, ...], Callable[..., list[str]]]] = [
    (("scale.json",), scale_section),
    (("mine_scale.json",), mine_scale_section),
    (("eval_speed.json",), eval_speed_section),
    (("train_speed.json", "train_speed_gpu.json"), train_speed_section),
    (("train_gpu_check.json",), gpu_check_section),
    (("onnx_speed.json",), onnx_section),
    (("llm_synthesis.json",), llm_synthesis_section),
]
"""The sections after the pipeline runs: the result files each reads (None where missing) and its renderer."""


def main() -> None:
    lines = ["# Benchmarks", "", "Every figure here is read from a result file of the harness in `bench/` (see "
             "`bench/README.md`) and regenerated with `python bench/report.py`. Each section names its machine and date; "
             "compare ratios, not absolute seconds, across machines.", ""]
    if (sample := load("sample_repro.json")) is not None:
        lines += sample_section(sample) + [""]
    for dataset, runs in sorted(pipeline_runs().items()):
        lines += quality_section(runs, dataset) + [""] + options_section(runs, dataset) + [""]
        lines += hard_negatives_section(runs, dataset) + [""] + speed_section(runs) + [""]
    for names, section in SECTIONS:
        results = [load(name) for name in names]
        if any(result is not None for result in results):
            lines += section(*results) + [""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
