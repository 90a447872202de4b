"""A review report in Markdown: this workspace's committed results against another git revision.

``python -m embedft.reporting.pr_report --against main`` compares what is on disk with ``main`` *without retraining*: the
verdict and headline metric of ``reports/evaluate.json`` on both sides, ``dvc metrics diff`` and ``dvc params
diff`` as tables, the plot data side by side, and a warning when ``dvc status`` finds that params, code or
tracked data changed after the metrics were produced (the committed numbers would then be stale).

The same Markdown is what the pull-request workflow posts (.github/workflows/pr-report.yml); it starts with
:data:`MARKER` so that the workflow finds and edits its own comment instead of adding a new one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from embedft.config import SYSTEMS, load_params
from embedft.core import PipelineError, run_stage, write_text_atomic
from embedft.core.artifacts import round_paths

MARKER = "<!-- embedding-finetune-report -->"
"""First line of every report: a hidden HTML comment the PR workflow looks for to update its own comment."""

EVALUATE_FILE = round_paths(1).evaluate_report
"""The full evaluation report; revisions from before the metrics were slimmed down kept it as the metrics file."""
OLD_EVALUATE_FILE = round_paths(1).evaluate_metrics
MAX_TABLE_ROWS = 150
"""Rows of one diff table before it is cut (a GitHub comment holds at most 65,536 characters)."""
MAX_PLOT_COLUMNS = 8
"""x values shown per plot; longer curves (the training loss) are sampled evenly, first and last kept."""
STALE_STATES = {"modified", "new"}
"""`dvc status` states that mean the committed results no longer match their inputs. "deleted" and
"not in cache" only mean the data was not pulled (as in CI), which says nothing about the metrics."""


@dataclass
class PlotSeries:
    """One line of one plot at one revision: y values by x value (both as DVC read them from the file)."""

    plot: str
    x_field: str
    series: str
    revision: str
    points: dict[str, float] = field(default_factory=dict)


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
    plots: list[PlotSeries]
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


def plot_series(plots_json: dict) -> list[PlotSeries]:
    """The lines of every plot in ``dvc plots diff --json --split`` output.

    Each data row carries its revision (``rev``) and x value; a plot with several y columns names the column
    in ``field`` and puts the value in ``dvc_inferred_y_value``, a plot with one y column keeps its own name.
    """
    lines: dict[tuple[str, str, str], PlotSeries] = {}
    for plot, renderers in plots_json.get("data", {}).items():
        for renderer in renderers:
            anchors = renderer.get("anchor_definitions", {})
            x_field = renderer.get("content", {}).get("encoding", {}).get("x", {}).get("field")
            y_label = anchors.get("<DVC_METRIC_Y_LABEL>")
            for row in anchors.get("<DVC_METRIC_DATA>", []):
                series, value = (row["field"], row.get("dvc_inferred_y_value")) if "field" in row else (y_label, row.get(y_label))
                try:
                    y = float(value)
                except (TypeError, ValueError):  # a missing or non-numeric cell draws nothing in DVC's chart either
                    continue
                if x_field in row:
                    key = (plot, series, row["rev"])
                    lines.setdefault(key, PlotSeries(plot, x_field, series, row["rev"])).points[str(row[x_field])] = y
    return list(lines.values())


def stale_results(status: dict) -> dict[str, list[str]]:
    """Per stage, the inputs or outputs `dvc status` reports as changed since the stage last ran."""
    stale: dict[str, list[str]] = {}
    for stage, changes in status.items():
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            for kind in ("changed deps", "changed outs"):
                for path, state in change.get(kind, {}).items():
                    if isinstance(state, dict):  # a params file: {section or key: state}
                        stale.setdefault(stage, []).extend(f"{path}: {key} {s}" for key, s in state.items())
                    elif state in STALE_STATES:
                        stale.setdefault(stage, []).append(f"{path} {state}")
    return stale


def collect(against: str, label: str, plots_url: str | None = None) -> ReportInputs:
    """Gather the report's inputs from git and DVC in the current directory (the project root)."""
    verify_revision(against)
    return ReportInputs(
        against=against,
        label=label,
        headline=load_params().evaluate.headline,
        evaluate_old=read_json_at(against, EVALUATE_FILE) or read_json_at(against, OLD_EVALUATE_FILE),
        evaluate_new=json.loads(EVALUATE_FILE.read_text(encoding="utf-8")) if EVALUATE_FILE.exists() else None,
        metrics_diff=run_dvc_json(["metrics", "diff", against]),
        params_diff=run_dvc_json(["params", "diff", against]),
        plots=plot_series(run_dvc_json(["plots", "diff", against, "--split"])),
        stale=stale_results(run_dvc_json(["status"])),
        plots_url=plots_url,
    )


def number(value: object) -> str:
    """A metric or param for a table cell: 4 significant digits for floats, anything else as written."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def change(old: object, new: object) -> str:
    """new − old with its sign when both are numbers (booleans are not), else an em dash."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    if not numeric:
        return "—"
    return f"{new - old:+.4g}" if new != old else "0"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; pipes inside cells are escaped."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header), *map(line, rows)]


def diff_section(title: str, command: str, diff: dict, kind: str, inputs: ReportInputs) -> list[str]:
    """A `dvc metrics diff` / `dvc params diff` result as one table: file, key, old, new, change."""
    rows = [[path, key, number(values.get("old")), number(values.get("new")), change(values.get("old"), values.get("new"))]
            for path, entries in sorted(diff.items()) for key, values in sorted(entries.items())]
    lines = [f"### {title}", "", f"`{command} {inputs.against}`", ""]
    if not rows:
        return [*lines, f"No {kind.lower()}s changed.", ""]
    shown = table(["file", kind, inputs.against, inputs.label, "change"], rows[:MAX_TABLE_ROWS])
    if len(rows) > MAX_TABLE_ROWS:
        shown.append(f"\n…and {len(rows) - MAX_TABLE_ROWS} more: run `{command} {inputs.against}` to see them all.")
    if len(rows) > 20:
        return [*lines, f"<details><summary>{len(rows)} {kind.lower()}s changed</summary>", "", *shown, "", "</details>", ""]
    return [*lines, *shown, ""]


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


def sampled(xs: list[str], keep: int) -> list[str]:
    """At most ``keep`` of ``xs``, evenly spaced, first and last included."""
    if len(xs) <= keep:
        return xs
    return [xs[round(i * (len(xs) - 1) / (keep - 1))] for i in range(keep)]


def plots_section(inputs: ReportInputs) -> list[str]:
    """Each plot as a small table: one row per line, one column per (sampled) x value, new value and change."""
    lines = ["### Plots", ""]
    if inputs.plots_url:
        lines += [f"Interactive charts of both revisions (`dvc plots diff {inputs.against}`): {inputs.plots_url}", ""]
    new_revision = next((s.revision for s in inputs.plots if s.revision != inputs.against), None)
    by_plot: dict[str, list[PlotSeries]] = {}
    for series in inputs.plots:
        by_plot.setdefault(series.plot, []).append(series)
    if not by_plot:
        return [*lines, "No plot data.", ""]
    for plot, all_series in by_plot.items():
        new = {s.series: s.points for s in all_series if s.revision == new_revision}
        old = {s.series: s.points for s in all_series if s.revision == inputs.against}
        xs = sorted({x for points in (new or old).values() for x in points}, key=_numeric_first)
        columns = sampled(xs, MAX_PLOT_COLUMNS)
        rows, changed = [], False
        for name in sorted(new or old):
            cells = []
            for x in columns:
                before, after = old.get(name, {}).get(x), new.get(name, {}).get(x)
                moved = before is not None and after is not None and before != after
                changed |= moved or (before is None) != (after is None)
                cells.append(f"{number(after)} ({change(before, after)})" if moved else number(after))
            rows.append([name, *cells])
        header = [f"{all_series[0].x_field} →", *columns]
        caption = f"change from {inputs.against} in brackets" if changed else f"unchanged from {inputs.against}"
        lines += [f"**{plot}**: {inputs.label} ({caption})", "", *table(header, rows), ""]
    return lines


def _numeric_first(value: str) -> tuple[int, float, str]:
    """Sort key: numbers in numeric order, then anything else alphabetically."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def render_report(inputs: ReportInputs) -> str:
    """The whole report as Markdown, starting with :data:`MARKER`."""
    lines = [MARKER, f"## Embedding fine-tuning: {inputs.label} vs {inputs.against}", ""]
    lines += verdict_section(inputs)
    lines += stale_section(inputs)
    lines += diff_section("Metrics", "dvc metrics diff", inputs.metrics_diff, "Metric", inputs)
    lines += diff_section("Params", "dvc params diff", inputs.params_diff, "Param", inputs)
    lines += plots_section(inputs)
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
