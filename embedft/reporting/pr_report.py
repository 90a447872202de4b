"""A review report in Markdown: this workspace's committed results against another git revision.

``python -m embedft.reporting.pr_report --against main`` compares what is on disk with ``main`` *without retraining*: the
verdict and headline metric of ``reports/evaluate.json`` on both sides, ``dvc metrics diff`` and ``dvc params
diff`` as tables per file, every chart of dvc.yaml as a Mermaid chart (which GitHub renders) and a table of both
revisions (:mod:`embedft.reporting.plots`), and a warning when ``dvc status`` finds that params, code or tracked
data changed after the metrics were produced (the committed numbers would then be stale).

The same Markdown is what the pull-request workflow posts (.github/workflows/pr-report.yml); it starts with
:data:`MARKER` so that the workflow finds and edits its own comment instead of adding a new one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from embedft.config import SYSTEMS, Params, load_params
from embedft.core import PipelineError, run_stage, write_text_atomic
from embedft.core.artifacts import round_paths
from embedft.reporting.plots import PlotData, change, chart_infos, declared_plots, number, plot_errors, plot_series, plots_section, table

MARKER = "<!-- embedding-finetune-report -->"
"""First line of every report: a hidden HTML comment the PR workflow looks for to update its own comment."""

EVALUATE_FILE = round_paths(1).evaluate_report
"""The full evaluation report; revisions from before the metrics were slimmed down kept it as the metrics file."""
OLD_EVALUATE_FILE = round_paths(1).evaluate_metrics
MAX_PARAM_ROWS = 150
"""Rows per file of the params diff before it is cut (a GitHub comment holds at most 65,536 characters). The metrics
diff is never cut: metrics/ holds the few numbers a reviewer compares."""
DETAILS_ROWS = 20
"""A params diff longer than this is folded into a <details> block."""
DVC_YAML = Path("dvc.yaml")
"""The pipeline file whose top-level `plots:` lists the charts the report shows (relative to the project root)."""
STALE_STATES = {"modified", "new"}
"""`dvc status` states that mean the committed results no longer match their inputs. "deleted" and
"not in cache" only mean the data was not pulled (as in CI), which says nothing about the metrics."""


@dataclass
class ReportInputs:
    """Everything the report shows, gathered from git and DVC by :func:`collect`."""

    against: str
    label: str
    headline: str
    evaluate_old: dict | None
    evaluate_new: dict | None
    metrics_diff: dict
    params_diff: dict
    plots: PlotData
    stale: dict[str, list[str]]
    plots_url: str | None = None


def run_dvc_json(arguments: list[str]) -> dict:
    """Run ``dvc <arguments> --json`` with this interpreter's DVC and parse its output.

    Raises:
        PipelineError: with DVC's own error line (e.g. ``unknown Git revision 'mian'``).
    """
    result = subprocess.run([sys.executable, "-m", "dvc", *arguments, "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line.removeprefix("ERROR: ") for line in result.stderr.splitlines() if line.strip()]
        raise PipelineError(f"dvc {' '.join(arguments)}: {lines[-1] if lines else f'exit status {result.returncode}'}")
    return json.loads(result.stdout or "{}")


def verify_revision(revision: str) -> None:
    """Fail with one clear line when ``revision`` names no commit (a typo, or a branch that was not fetched)."""
    result = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise PipelineError(f"--against: unknown git revision '{revision}'; is it fetched? (CI: check out with fetch-depth: 0)")


def read_json_at(revision: str, path: Path) -> dict | None:
    """The JSON file ``path`` (relative to the current directory) at a git revision; None where it is absent."""
    result = subprocess.run(["git", "show", f"{revision}:./{path.as_posix()}"], capture_output=True, text=True)
    if result.returncode != 0:
        if "exists on disk, but not in" in result.stderr or "does not exist in" in result.stderr:
            return None
        raise PipelineError(f"git show {revision}:{path}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def stale_results(status: dict) -> dict[str, list[str]]:
    """Per stage, the inputs or outputs `dvc status` reports as changed since the stage last ran."""
    stale: dict[str, list[str]] = {}
    for stage, changes in status.items():
        for entry in changes if isinstance(changes, list) else []:
            if not isinstance(entry, dict):
                continue
            for kind in ("changed deps", "changed outs"):
                for path, state in entry.get(kind, {}).items():
                    if isinstance(state, dict):  # a params file: {section or key: state}
                        stale.setdefault(stage, []).extend(f"{path}: {key} {s}" for key, s in state.items())
                    elif state in STALE_STATES:
                        stale.setdefault(stage, []).append(f"{path} {state}")
    return stale


def headline_xs(params: Params) -> dict[str, list[str]]:
    """x values every plot table and chart shows, by x column: the Recall cut-offs that `evaluate` reports (``k``
    of the Recall@k curve) and the width you ship (``dim`` of nDCG by embedding width)."""
    return {"k": [str(k) for k in params.evaluate.recall_at], "dim": [str(params.truncate_eval.chosen_dim)]}


def collect_plots(against: str, params: Params) -> PlotData:
    """`dvc plots diff` of both revisions, with the charts dvc.yaml declares and the x values always shown."""
    diff = run_dvc_json(["plots", "diff", against, "--split"])
    return PlotData(plot_series(diff), chart_infos(diff), declared_plots(DVC_YAML), plot_errors(diff), headline_xs(params))


def collect(against: str, label: str, plots_url: str | None = None) -> ReportInputs:
    """Gather the report's inputs from git and DVC in the current directory (the project root)."""
    verify_revision(against)
    params = load_params()
    return ReportInputs(
        against=against,
        label=label,
        headline=params.evaluate.headline,
        evaluate_old=read_json_at(against, EVALUATE_FILE) or read_json_at(against, OLD_EVALUATE_FILE),
        evaluate_new=json.loads(EVALUATE_FILE.read_text(encoding="utf-8")) if EVALUATE_FILE.exists() else None,
        metrics_diff=run_dvc_json(["metrics", "diff", against]),
        params_diff=run_dvc_json(["params", "diff", against]),
        plots=collect_plots(against, params),
        stale=stale_results(run_dvc_json(["status"])),
        plots_url=plots_url,
    )


def diff_rows(diff: dict) -> dict[str, list[list[str]]]:
    """A `dvc metrics diff` / `dvc params diff` result as rows (key, old, new, change), by file, both sorted."""
    return {path: [[key, number(values.get("old")), number(values.get("new")), change(values.get("old"), values.get("new"))]
                   for key, values in sorted(entries.items())]
            for path, entries in sorted(diff.items()) if entries}


def diff_section(title: str, command: str, diff: dict, kind: str, inputs: ReportInputs, max_rows: int | None = None) -> list[str]:
    """A diff as one table per file (every file shown); with ``max_rows``, each file's table is cut there and the
    whole is folded away when long."""
    by_file = diff_rows(diff)
    lines = [f"### {title}", "", f"`{command} {inputs.against}`", ""]
    if not by_file:
        return [*lines, f"No {kind.lower()}s changed.", ""]
    shown = []
    for path, rows in by_file.items():
        header = [kind.lower(), inputs.against, inputs.label, "change"]
        shown += [f"**`{path}`**: {len(rows)} changed", "", *table(header, rows[:max_rows]), ""]
        if max_rows is not None and len(rows) > max_rows:
            shown += [f"…and {len(rows) - max_rows} more in `{path}`: run `{command} {inputs.against}` to see them all.", ""]
    total = sum(map(len, by_file.values()))
    if max_rows is not None and total > DETAILS_ROWS:
        return [*lines, f"<details><summary>{total} {kind.lower()}s changed</summary>", "", *shown, "</details>", ""]
    return [*lines, *shown]


def describe_comparison(comparison: dict, headline: str, queries: object) -> str:
    """'+0.0468 (95% CI +0.0235 .. +0.0700, p = 0.001; 147 won, 260 tied, 89 lost on 496 queries)'."""
    return (f"{headline}, fine-tuned minus base: **{comparison['difference']:+.4f}** (95% CI {comparison['ci_low']:+.4f} .. "
            f"{comparison['ci_high']:+.4f}, p = {comparison['p_value']:.3g}; {comparison['wins']} queries won, "
            f"{comparison['ties']} tied, {comparison['losses']} lost, of {queries})")


def verdict_section(inputs: ReportInputs) -> list[str]:
    """The verdict on both sides, the headline comparison with its interval, the headline table and warnings."""
    old, new, headline = inputs.evaluate_old or {}, inputs.evaluate_new or {}, inputs.headline
    if not new:
        return [f"No `{EVALUATE_FILE}` in {inputs.label}: run `dvc repro` and commit the results.", ""]
    if "verdict" not in new:
        return [f"No verdict: `evaluate` found {new.get('test_queries', 0)} test queries with relevance judgements in "
                f"{inputs.label}, so no quality metric was computed.", ""]
    was = f" ({inputs.against}: {old['verdict']})" if "verdict" in old else f" ({inputs.against}: no verdict)"
    lines = [f"**Verdict: {new['verdict']}**{was}", "", describe_comparison(new["comparisons"]["finetuned_vs_base"], headline,
                                                                           new.get("test_queries")), ""]
    systems = [s for s in SYSTEMS if isinstance(new.get(s), dict) or isinstance(old.get(s), dict)]
    rows = []
    for system in systems:
        before, after = old.get(system, {}).get(headline), new.get(system, {}).get(headline)
        rows.append([system, number(before), number(after), change(before, after)])
    lines += table(["system", f"{headline} {inputs.against}", f"{headline} {inputs.label}", "change"], rows) + [""]
    if new.get("shipped", {}).get("line"):  # the recommendation, chosen on dev (older reports have none)
        lines += [f"**What to ship**: {new['shipped']['line']}.", ""]
    if new["verdict"] == "regression":
        lines += [f"> [!WARNING]\n> **Regression**: the fine-tuned model is worse than the base model on {headline}.", ""]
    if new.get("suspected_leak"):
        lines += [f"> [!WARNING]\n> A {new['relative_gain']:.0%} relative gain is suspicious: check that test queries are not "
                  "in the training pairs.", ""]
    leaks = new.get("leakage", {})
    if any(leaks.values()):
        lines += [f"Leakage check: {leaks.get('exact', 0)} test queries verbatim in the training pairs, "
                  f"{leaks.get('normalised', 0)} after normalisation, {leaks.get('near_duplicate', 0)} near-duplicates.", ""]
    forgetting = new.get("forgetting")
    if forgetting and f"drop_{headline}" in forgetting:
        lines += [f"Out-of-domain {headline} drop (forgetting): {forgetting[f'drop_{headline}']:+.4f} on "
                  f"{forgetting.get('queries')} queries.", ""]
    return lines


def stale_section(inputs: ReportInputs) -> list[str]:
    """Whether the committed metrics still match the committed params, code and tracked data."""
    if not inputs.stale:
        return ["The committed metrics match the committed params, code and data (`dvc status` found nothing to rerun; "
                "data that was not pulled is not checked).", ""]
    lines = ["> [!CAUTION]", "> **Stale results**: these changed after the metrics were produced; run `dvc repro` and commit:"]
    lines += [f"> - `{stage}`: " + ", ".join(f"`{item}`" for item in items) for stage, items in sorted(inputs.stale.items())]
    return [*lines, ""]


def render_report(inputs: ReportInputs) -> str:
    """The whole report as Markdown, starting with :data:`MARKER`."""
    lines = [MARKER, f"## Embedding fine-tuning: {inputs.label} vs {inputs.against}", ""]
    lines += verdict_section(inputs)
    lines += stale_section(inputs)
    lines += diff_section("Metrics", "dvc metrics diff", inputs.metrics_diff, "Metric", inputs)
    lines += diff_section("Params", "dvc params diff", inputs.params_diff, "Param", inputs, MAX_PARAM_ROWS)
    lines += plots_section(inputs.plots, inputs.against, inputs.label, inputs.plots_url)
    lines.append("<sub>Committed results compared, nothing retrained. Made by "
                 f"`python -m embedft.reporting.pr_report --against {inputs.against}`.</sub>")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Markdown review report: this workspace's results against a git revision.")
    parser.add_argument("--against", required=True, help="git revision to compare with, e.g. main or origin/main")
    parser.add_argument("--label", default="workspace", help="name of this side in the tables (default: workspace)")
    parser.add_argument("--plots-url", help="link to the rendered `dvc plots diff` charts (the PR workflow's artifact)")
    parser.add_argument("--output", type=Path, help="write the Markdown here instead of standard output")
    args = parser.parse_args(argv)
    markdown = render_report(collect(args.against, args.label, args.plots_url))
    if args.output:
        write_text_atomic(args.output, markdown)
        print(f"pr_report: wrote {args.output}")
    else:
        sys.stdout.write(markdown)


if __name__ == "__main__":
    run_stage(main)
