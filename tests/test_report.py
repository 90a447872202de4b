"""`python -m embedft.reporting.pr_report` on a real git + DVC project with two commits of different metrics, and
`python -m embedft.reporting.pr_comment` against a stand-in `gh` that keeps the pull request's comments in a file.

The charts the report must show come from dvc.yaml's `plots:` (tests/declared_charts.py), not from a list here.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from declared_charts import declared_charts
from project_copies import committed_copy
from test_pipeline_e2e import TEMPLATE_ROOT, run, set_params

from embedft.config import Params, TruncateEvalParams
from embedft.reporting.plots import (
    MAX_PLOT_COLUMNS,
    ChartInfo,
    PlotData,
    PlotSeries,
    change,
    mermaid_number,
    number,
    plot_series,
    plots_section,
    sampled,
)
from embedft.reporting.pr_report import MARKER, ReportInputs, diff_section, headline_xs, stale_results, verdict_section

NODE_MODULES = TEMPLATE_ROOT / ".ci" / "node" / "node_modules"
MERMAID = NODE_MODULES / "mermaid" / "dist" / "mermaid.min.js"
ARTIFACTS = TEMPLATE_ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def project(pristine_pipeline, tmp_path_factory) -> Path:
    return committed_copy(pristine_pipeline[0], tmp_path_factory.mktemp("report") / "project")


def edit_json(path: Path, edit) -> None:
    """Rewrite a JSON file as the stages write it, after ``edit(data)``."""
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def two_commits(project: Path) -> dict:
    """The report of the first commit against itself, then a second commit with other params and metrics
    (committed without `dvc repro`, so its results are stale) and its report against the first."""
    unchanged = run([sys.executable, "-m", "embedft.reporting.pr_report", "--against", "HEAD"], project).stdout
    # values relative to the copy's, so that the test does not depend on the template's defaults
    old_rate = yaml.safe_load((project / "params.yaml").read_text())["train"]["learning_rate"]
    set_params(project, {"train": {"learning_rate": old_rate * 3}})
    metrics = json.loads((project / "metrics" / "evaluate.json").read_text())
    old_ndcg, old_verdict = metrics["finetuned"]["ndcg@10"], metrics["verdict"]
    new_ndcg, new_verdict = round(old_ndcg - 0.25, 6), "ship" if old_verdict == "regression" else "regression"

    def worse(data: dict, comparison: dict) -> None:
        data["finetuned"]["ndcg@10"], data["verdict"] = new_ndcg, new_verdict
        comparison.update(difference=-0.25, ci_low=-0.4, ci_high=-0.1)

    edit_json(project / "metrics" / "evaluate.json", lambda data: worse(data, data["finetuned_vs_base"]))
    edit_json(project / "reports" / "evaluate.json", lambda data: worse(data, data["comparisons"]["finetuned_vs_base"]))
    curve = (project / "plots" / "recall_at_k.csv").read_text().splitlines()
    assert curve[0].startswith("k,base,fine-tuned,")
    k, base, finetuned, *rest = curve[1].split(",")
    curve[1] = ",".join([k, base, "0.123456", *rest])
    (project / "plots" / "recall_at_k.csv").write_text("\n".join(curve) + "\n")
    run(["git", "commit", "-q", "-am", "second run"], project)
    output = project / "review" / "report.md"
    printed = run([sys.executable, "-m", "embedft.reporting.pr_report", "--against", "HEAD~1", "--label", "#7",
                   "--plots-url", "https://example.invalid/plots", "--output", str(output)], project).stdout
    return {"unchanged": unchanged, "report": output.read_text(), "printed": printed, "old_ndcg": old_ndcg,
            "new_ndcg": new_ndcg, "old_verdict": old_verdict, "new_verdict": new_verdict, "old_rate": old_rate}


def table_rows(markdown: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("| ")]


def file_tables(markdown: str) -> dict[str, list[list[str]]]:
    """The rows of each per-file diff table, by the file its heading names."""
    parts = re.split(r"^\*\*`([^`]+)`\*\*: \d+ changed$", markdown, flags=re.M)
    return {path: table_rows(body.split("\n\n#", 1)[0].split("###", 1)[0]) for path, body in zip(parts[1::2], parts[2::2])}


def mermaid_blocks(markdown: str) -> list[str]:
    """The text inside each ```mermaid fence."""
    return re.findall(r"```mermaid\n(.*?)```", markdown, re.S)


@pytest.mark.slow
def test_report_of_unchanged_commit_says_so(two_commits: dict) -> None:
    report = two_commits["unchanged"]
    assert report.startswith(MARKER + "\n")
    assert "No metrics changed." in report and "No params changed." in report
    assert "The committed metrics match the committed params, code and data" in report
    assert "unchanged from HEAD" in report and "change from HEAD" not in report
    assert "paler lines" not in report  # the base revision's lines equal the current ones: not drawn twice


@pytest.mark.slow
def test_report_shows_metric_and_param_changes_and_the_verdict(two_commits: dict) -> None:
    report, old, new = two_commits["report"], two_commits["old_ndcg"], two_commits["new_ndcg"]
    assert report.startswith(MARKER + "\n") and "report: wrote" in two_commits["printed"]
    tables = file_tables(report)
    assert ["finetuned.ndcg@10", number(old), number(new), change(old, new)] in tables["metrics/evaluate.json"]
    before, after = two_commits["old_verdict"], two_commits["new_verdict"]
    assert ["verdict", before, after, "—"] in tables["metrics/evaluate.json"]
    rate = two_commits["old_rate"]
    assert ["train.learning_rate", number(rate), number(rate * 3), change(rate, rate * 3)] in tables["params.yaml"]
    assert ["finetuned", number(old), number(new), change(old, new)] in table_rows(report)  # the headline table
    assert f"**Verdict: {after}** (HEAD~1: {before})" in report
    assert "**-0.2500** (95% CI -0.4000 .. -0.1000" in report
    assert ("**Regression**: the fine-tuned model is worse" in report) == (after == "regression")


def test_verdict_section_warns_of_a_regression_and_a_suspected_leak() -> None:
    comparison = {"difference": -0.03, "ci_low": -0.05, "ci_high": -0.01, "p_value": 0.002, "wins": 3, "ties": 10, "losses": 20}
    new = {"verdict": "regression", "suspected_leak": 1, "relative_gain": 0.62, "test_queries": 33,
           "comparisons": {"finetuned_vs_base": comparison}, "base": {"ndcg@10": 0.5}, "finetuned": {"ndcg@10": 0.47},
           "leakage": {"exact": 2, "normalised": 3, "near_duplicate": 5}}
    inputs = ReportInputs("main", "#3", "ndcg@10", None, new, {}, {}, PlotData(), {})
    text = "\n".join(verdict_section(inputs))
    assert "**Verdict: regression** (main: no verdict)" in text
    assert "**Regression**: the fine-tuned model is worse than the base model on ndcg@10." in text
    assert "A 62% relative gain is suspicious" in text
    assert "Leakage check: 2 test queries verbatim in the training pairs, 3 after normalisation, 5 near-duplicates." in text
    assert "| finetuned | — | 0.47 | — |" in text
    assert "What to ship" not in text  # a report from before the recommendation existed has none


def test_verdict_section_names_the_system_to_ship() -> None:
    comparison = {"difference": 0.04, "ci_low": 0.01, "ci_high": 0.07, "p_value": 0.01, "wins": 20, "ties": 10, "losses": 3}
    line = "ship hybrid (fine-tuned + BM25, weight 0.7, min-max), the best of every system on dev: nDCG@10 0.7000 on test"
    new = {"verdict": "ship", "suspected_leak": 0, "relative_gain": 0.08, "test_queries": 33,
           "comparisons": {"finetuned_vs_base": comparison}, "base": {"ndcg@10": 0.5}, "finetuned": {"ndcg@10": 0.54},
           "hybrid": {"ndcg@10": 0.7}, "shipped": {"system": "hybrid", "line": line}}
    text = "\n".join(verdict_section(ReportInputs("main", "#3", "ndcg@10", None, new, {}, {}, PlotData(), {})))
    assert f"**What to ship**: {line}." in text
    assert "| hybrid | — | 0.7 | — |" in text


def test_metrics_diff_shows_every_file_and_every_metric() -> None:
    """No cut: every changed metric of every file, one table per file (params are cut per file, never dropped)."""
    diff = {f"metrics/{name}.json": {f"key{i:03d}": {"old": i, "new": i + 1} for i in range(count)}
            for name, count in (("evaluate", 200), ("train", 2), ("truncate", 1))}
    inputs = ReportInputs("main", "#3", "ndcg@10", None, None, diff, diff, PlotData(), {})
    metrics = "\n".join(diff_section("Metrics", "dvc metrics diff", diff, "Metric", inputs))
    assert {path: len(rows) - 1 for path, rows in file_tables(metrics).items()} == {  # minus the header row
        "metrics/evaluate.json": 200, "metrics/train.json": 2, "metrics/truncate.json": 1}
    assert "more in" not in metrics and "<details>" not in metrics
    params = "\n".join(diff_section("Params", "dvc params diff", diff, "Param", inputs, max_rows=150))
    assert {path: len(rows) - 1 for path, rows in file_tables(params).items()} == {
        "metrics/evaluate.json": 150, "metrics/train.json": 2, "metrics/truncate.json": 1}
    assert "…and 50 more in `metrics/evaluate.json`" in params and "<summary>203 params changed</summary>" in params


@pytest.mark.slow
def test_report_flags_results_committed_without_repro(two_commits: dict) -> None:
    report = two_commits["report"]
    assert "**Stale results**" in report
    assert "> - `train`: `params.yaml: train" in report  # the section, or the key where dvc.yaml lists keys
    assert "`metrics/evaluate.json modified`" in report


@pytest.mark.slow
def test_report_shows_the_plots_side_by_side(two_commits: dict) -> None:
    report = two_commits["report"]
    assert "Interactive charts of both revisions (`dvc plots diff HEAD~1`): https://example.invalid/plots" in report
    recall = report.split("**Recall@k by system**")[1].split("\n**", 1)[0]
    finetuned = next(row for row in table_rows(recall) if row[0] == "fine-tuned")
    assert finetuned[1].startswith("0.1235 (") and finetuned[1].endswith(")")  # k=1 moved, with its change
    assert "change from HEAD~1 in brackets" in recall
    (chart,) = mermaid_blocks(recall)
    assert re.search(r'^    line "fine-tuned \(HEAD~1\)" \[', chart, re.M)  # the base revision's line, which differs
    assert re.search(r'^    line "fine-tuned" \[0\.1235, ', chart, re.M)
    assert "; paler lines: `HEAD~1`" in recall


@pytest.mark.slow
@pytest.mark.parametrize("side", ["unchanged", "report"])
def test_report_shows_every_chart_declared_in_dvc_yaml(two_commits: dict, project: Path, side: str) -> None:
    """Every chart of the project's dvc.yaml, as a Mermaid chart with its titles and series and as a table."""
    report = two_commits[side]
    charts = declared_charts(project / "dvc.yaml")
    assert charts and [chart.title for chart in charts] == [chart.title for chart in declared_charts()]
    blocks = mermaid_blocks(report)
    for chart in charts:
        assert f"**{chart.title}**: " in report and f"**{chart.title}**: no data" not in report, chart.title
        (block,) = [block for block in blocks if f'    title "{chart.title}"\n' in block]
        assert f'    x-axis "{chart.x_label}" [' in block and f'    y-axis "{chart.y_label}"\n' in block, block
        for series in chart.series:
            assert f'    line "{series}" [' in block, f"{chart.title}: no line {series!r}"
        section = report.split(f"**{chart.title}**: ")[1].split("\n**", 1)[0]
        assert {row[0] for row in table_rows(section)[1:]} == set(chart.series)
        legend = next(line for line in section.splitlines() if line.startswith("🟦"))
        assert all(f" {series}" in legend for series in chart.series), legend
    assert len(blocks) == len(charts)


def render_mermaid(blocks: list[str], browser: str, folder: Path) -> tuple[list[str], str]:
    """Draw each Mermaid block with the pinned mermaid in headless chromium: (per block "ok" or its error, DOM)."""
    page = folder / "mermaid.html"
    page.write_text(MERMAID_PAGE.replace("MERMAID_JS", MERMAID.as_uri()).replace("BLOCKS", json.dumps(blocks)), encoding="utf-8")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-background-networking", "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={folder / 'profile'}",
               "--virtual-time-budget=15000"]
    dom = subprocess.run([*command, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    status = re.search(r'<pre id="render-status">(.*?)</pre>', dom, re.S)
    assert status, f"mermaid never finished; DOM tail:\n{dom[-2000:]}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run([*command, f"--screenshot={ARTIFACTS / 'report_charts.png'}", f"--window-size=900,{520 * len(blocks)}",
                    page.as_uri()], capture_output=True, timeout=180, check=True)
    return json.loads(status.group(1)), dom


MERMAID_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><script src="MERMAID_JS"></script>
<style>body { background: white; width: 880px; } #render-status { display: none; }</style>
<script>
  mermaid.initialize({startOnLoad: false});
  const blocks = BLOCKS;
  window.addEventListener("load", async () => {
    const results = [];
    for (const [number, text] of blocks.entries()) {
      try {
        const {svg} = await mermaid.render("chart" + number, text);
        const div = document.createElement("div");
        div.innerHTML = svg;
        document.body.appendChild(div);
        results.push("ok");
      } catch (error) {
        results.push(String((error && error.message) || error));
      }
    }
    const status = document.createElement("pre");
    status.id = "render-status";
    status.textContent = JSON.stringify(results);
    document.body.appendChild(status);
  });
</script></head><body></body></html>
"""


@pytest.mark.slow
def test_report_charts_render_in_mermaid(two_commits: dict, tmp_path: Path) -> None:
    """The report's charts parse and draw in mermaid 10 (older than GitHub's), titles and axes included;
    tests/artifacts/report_charts.png shows them."""
    browser = next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)
    if browser is None or not MERMAID.is_file():
        pytest.skip("chromium or mermaid is missing: run .ci/install_browser.sh")
    blocks = mermaid_blocks(two_commits["report"])
    results, dom = render_mermaid(blocks, browser, tmp_path)
    assert results == ["ok"] * len(blocks), results
    for chart in declared_charts():
        assert f">{chart.title}</text>" in dom and f">{chart.y_label}</text>" in dom, chart.title


def test_plot_tables_and_charts_keep_the_headline_cutoffs() -> None:
    """Sampling a long x axis keeps first, last, k = 10 (and the other Recall cut-offs) and the width you ship."""
    params = Params(truncate_eval=TruncateEvalParams(dims=[768, 512, 384, 256, 192, 128, 96, 64, 48, 32], default_dim=192))
    ks, dims = ["1", "2", "3", "5", "10", "20", "30", "50", "100", "200", "500", "1000"], ["32", "48", "64", "96", "128", "192",
                                                                                        "256", "384", "512", "768"]
    series = [PlotSeries("Recall@k by system", "k", "fine-tuned", "workspace", {k: 0.5 for k in ks}),
              PlotSeries("nDCG@10 by embedding width", "dim", "fine-tuned float32", "workspace", {d: 0.5 for d in dims})]
    plots = PlotData(series, {"Recall@k by system": ChartInfo("Recall@k by system", "k", "Recall@k")}, [], [], headline_xs(params))
    text = "\n".join(plots_section(plots, "main", "workspace", None))
    recall_header, ndcg_header = [row for row in table_rows(text) if row[0].endswith("→")]
    assert {"1", "10", "100", "1000"} <= set(recall_header[1:]) and len(recall_header) - 1 == MAX_PLOT_COLUMNS
    assert {"32", "192", "768"} <= set(ndcg_header[1:]) and len(ndcg_header) - 1 == MAX_PLOT_COLUMNS
    assert 'x-axis "k" ["1", "2", "3", "5", "10", "20", "30", "50", "100", "200", "500", "1000"]' in text  # 12 fit a chart


def test_sampled_keeps_first_last_and_pinned() -> None:
    assert sampled([str(i) for i in range(1, 86)], 8) == ["1", "13", "25", "37", "49", "61", "73", "85"]
    assert sampled(["1", "2"], 8) == ["1", "2"]
    nine = ["1", "2", "3", "5", "10", "20", "30", "50", "100"]
    assert "10" not in sampled(nine, 8)  # even spacing alone drops the headline cut-off
    assert sampled(nine, 8, pinned=["1", "10", "100"]) == ["1", "2", "3", "10", "20", "30", "50", "100"]
    assert sampled(nine, 3, pinned=["2", "10", "30"]) == ["1", "2", "10", "30", "100"]  # pinned outrank the limit


def test_mermaid_numbers_are_plain_decimals() -> None:
    assert [mermaid_number(v) for v in (0.6474078, 12.1298, 5e-05, 4.358974e-05, 0.0, 1.0, -0.25, 1234.6)] == [
        "0.6474", "12.13", "0.00005", "0.00004359", "0", "1", "-0.25", "1235"]


@pytest.mark.slow
def test_plot_series_reads_every_row_shape_dvc_emits(tmp_path: Path) -> None:
    """`dvc plots diff --json --split` (the pinned DVC) keys rows by `field`, `filename::field`, `filename` or
    nothing, depending on the template and the y files; every shape yields its lines at both revisions."""
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    shutil.copytree(TEMPLATE_ROOT / ".dvc" / "plots", tmp_path / ".dvc" / "plots")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": [
        {"one column": {"template": "linear", "x": "step", "y": {"a.csv": "p"}}},
        {"files and columns": {"template": "linear", "x": "step", "y": {"a.csv": "p", "b.csv": "r"}}},
        {"files, one column": {"template": "linear", "x": "step", "y": {"b.csv": "r", "c.csv": "r"}}},
        {"series template": {"template": "series", "x": "step", "y": {"a.csv": ["p", "q"]}}},
    ]}, sort_keys=False))

    def write(scale: float) -> None:
        for name, columns in (("a", ("p", "q")), ("b", ("r",)), ("c", ("r",))):
            rows = [",".join(["step", *columns])] + [",".join([str(step), *(str(scale * step * (i + 1)) for i, _ in enumerate(columns))])
                                                     for step in (1, 2)]
            (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")

    write(1.0)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-q", "-m", "first"], tmp_path)
    write(2.0)
    output = json.loads(run(["dvc", "plots", "diff", "HEAD", "--json", "--split"], tmp_path).stdout)
    lines = {(s.plot, s.series, s.revision): s.points for s in plot_series(output)}
    expected = {("one column", "p"): 1.0, ("files and columns", "a.csv::p"): 1.0, ("files and columns", "b.csv::r"): 1.0,
                ("files, one column", "b.csv"): 1.0, ("files, one column", "c.csv"): 1.0, ("series template", "p"): 1.0,
                ("series template", "q"): 2.0}
    for (plot, series), slope in expected.items():
        assert lines[(plot, series, "HEAD")] == {"1": slope, "2": 2 * slope}, (plot, series)
        assert lines[(plot, series, "workspace")] == {"1": 2 * slope, "2": 4 * slope}, (plot, series)
    assert len(lines) == 2 * len(expected)


def test_stale_results_ignore_data_that_was_not_pulled() -> None:
    status = {
        "train": [{"changed deps": {"data/negatives": "deleted", "stages/train.py": "modified",
                                    "params.yaml": {"train.learning_rate": "modified"}}},
                  {"changed outs": {"models/finetuned": "not in cache"}}],
        "evaluate": [{"changed deps": {"models/finetuned": "deleted"}}],
        "ingest": ["always changed"],
    }
    assert stale_results(status) == {"train": ["stages/train.py modified", "params.yaml: train.learning_rate modified"]}


def test_workflow_pins_the_dvc_the_tests_run() -> None:
    """The report parses DVC's plot JSON: the workflow installs exactly the DVC (and dvc-render) installed here,
    which the `test` extra of pyproject.toml pins too."""
    install = next(step["run"] for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["report"]["steps"]
                   if "pip install" in step.get("run", ""))
    test_extra = re.search(r"^test = \[(.*)\]$", (TEMPLATE_ROOT / "pyproject.toml").read_text(), re.M).group(1)  # no tomllib on 3.10
    for package in ("dvc", "dvc-render"):
        pinned = re.search(rf'"{package}==([^"]+)"', install)
        assert pinned, f"the workflow installs {package} unpinned: {install}"
        assert pinned.group(1) == importlib.metadata.version(package), f"the workflow pins {package} {pinned.group(1)}"
        assert f'"{package}=={pinned.group(1)}"' in test_extra, f"pyproject.toml's test extra does not pin {package}"


# --- posting: a stand-in for the GitHub CLI ------------------------------------------------------------------

FAKE_GH = '''#!{python}
"""Stand-in for `gh api`: the pull request's comments live in $FAKE_GH_STATE; pages of two, like --paginate."""
import json, os, re, sys
state_file = os.environ["FAKE_GH_STATE"]
state = json.load(open(state_file))
args = sys.argv[1:]
state["calls"].append(args)
if os.environ.get("FAKE_GH_FAIL"):
    print(os.environ["FAKE_GH_FAIL"], file=sys.stderr); sys.exit(1)
assert args[0] == "api", args
method = args[args.index("--method") + 1] if "--method" in args else "GET"
endpoint = next(a for a in args[1:] if a.startswith("repos/"))
body = next((open(a.split("=@", 1)[1]).read() for a in args if a.startswith("body=@")), None)
if method == "GET" and re.fullmatch(r"repos/\\{{owner\\}}/\\{{repo\\}}/issues/\\d+/comments", endpoint):
    comments = state["comments"]
    sys.stdout.write("".join(json.dumps(comments[i:i + 2]) for i in range(0, max(len(comments), 1), 2)))
elif method == "POST":
    state["comments"].append({{"id": 1000 + len(state["comments"]), "body": body}})
elif method == "PATCH":
    number = int(endpoint.rsplit("/", 1)[1])
    next(c for c in state["comments"] if c["id"] == number)["body"] = body
else:
    sys.exit(f"unexpected call {{args}}")
json.dump(state, open(state_file, "w"))
'''


@pytest.fixture
def fake_gh(tmp_path: Path, monkeypatch) -> Path:
    """A `gh` first on PATH whose state (comments and calls) is the returned JSON file."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "gh"
    script.write_text(FAKE_GH.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "gh_state.json"
    state.write_text(json.dumps({"comments": [
        {"id": 1, "body": "Looks good to me"},
        {"id": 2, "body": f"> {MARKER}\n> quoting the bot"},
        {"id": 3, "body": "another remark"},
    ], "calls": []}))
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    return state


def post(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    report = tmp_path / "report.md"
    report.write_text(body)
    return run([sys.executable, "-m", "embedft.reporting.pr_comment", "--pr", "7", "--body-file", str(report)], TEMPLATE_ROOT, check=False)


def test_pr_comment_is_created_once_then_edited(fake_gh: Path, tmp_path: Path) -> None:
    first = post(f"{MARKER}\nfirst report\n", tmp_path)
    assert first.returncode == 0, first.stderr
    assert "created the report comment on pull request #7" in first.stdout
    second = post(f"{MARKER}\nsecond report\n", tmp_path)
    assert "updated the report comment on pull request #7" in second.stdout
    state = json.loads(fake_gh.read_text())
    bodies = [c["body"] for c in state["comments"]]
    assert bodies == ["Looks good to me", f"> {MARKER}\n> quoting the bot", "another remark", f"{MARKER}\nsecond report\n"]
    assert [call[:3] for call in state["calls"] if "--method" in call] == [
        ["api", "--method", "POST"], ["api", "--method", "PATCH"]]
    assert state["calls"][-1][3] == "repos/{owner}/{repo}/issues/comments/1003"


def test_pr_comment_failure_is_one_clear_error(fake_gh: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_GH_FAIL", "HTTP 403: Resource not accessible by integration")
    result = post(f"{MARKER}\nreport\n", tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: gh api --paginate repos/{owner}/{repo}/issues/7/comments: HTTP 403: Resource not accessible")


def test_pr_comment_refuses_a_body_without_the_marker(fake_gh: Path, tmp_path: Path) -> None:
    result = post("just text\n", tmp_path)
    assert result.returncode == 1 and "must start with the report marker" in result.stderr
    assert json.loads(fake_gh.read_text())["calls"] == []


# --- the pull-request workflow's own shell steps, run in order against the stand-in gh -------------------------

WORKFLOW = TEMPLATE_ROOT / ".github" / "workflows" / "pr-report.yml"
GITHUB_CONTEXT = {
    "github.base_ref": "main", "github.event.pull_request.number": "7", "github.repository": "org/repo",
    "github.event.pull_request.head.sha": "abcdef0123456789", "github.token": "dummy-token",
    "steps.plots.outputs.artifact-url": "https://example.invalid/artifacts/42",
    "github.event.pull_request.head.repo.full_name": "org/repo",
}


def expand(text: str) -> str:
    """Replace GitHub's ${{ expression }} placeholders with the values of GITHUB_CONTEXT."""
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: GITHUB_CONTEXT[m.group(1)], text)


def run_workflow_steps(project: Path, summary: Path) -> list[str]:
    """Run every `run:` step of the workflow except the dependency install, as GitHub would (bash -e), with the
    job's and the step's env; return the names of the steps run."""
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["report"]
    names = []
    for step in job["steps"]:
        if "run" not in step or "pip install" in step["run"]:
            continue
        if "if" in step:
            left, right = (part.strip() for part in step["if"].split("=="))
            if GITHUB_CONTEXT[left] != GITHUB_CONTEXT[right]:
                continue
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", GITHUB_STEP_SUMMARY=str(summary))
        env.update({k: expand(str(v)) for k, v in {**job.get("env", {}), **step.get("env", {})}.items()})
        result = subprocess.run(["bash", "-e", "-c", expand(step["run"])], cwd=project, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"step {step['name']!r} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        names.append(step["name"])
    return names


def test_workflow_triggers_on_pull_requests_and_never_retrains() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert list(workflow[True]) == ["pull_request"]  # YAML reads the key `on` as True
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    commands = " ".join(step.get("run", "") for step in workflow["jobs"]["report"]["steps"])
    assert not re.search(r"dvc (repro|pull|exp)|stages\.(train|evaluate)|make ", commands)


@pytest.mark.slow
def test_workflow_steps_post_one_comment_and_update_it(two_commits: dict, project: Path, fake_gh: Path, tmp_path: Path) -> None:
    run(["git", "update-ref", "refs/remotes/origin/main", "HEAD~1"], project)  # what checkout with fetch-depth 0 gives
    summary = tmp_path / "summary.md"
    names = run_workflow_steps(project, summary)
    assert names == ["Render the plots of both revisions", "Build the report", "Post or update the pull request comment"]
    assert (project / "dvc_plots" / "index.html").is_file()
    report = (project / "report.md").read_text()
    assert report.startswith(MARKER) and "## Embedding fine-tuning: #7 (abcdef0) vs origin/main" in report
    assert f"**Verdict: {two_commits['new_verdict']}**" in report and "https://example.invalid/artifacts/42" in report
    assert summary.read_text() == report
    run_workflow_steps(project, summary)  # a second push to the pull request
    comments = json.loads(fake_gh.read_text())["comments"]
    ours = [c for c in comments if c["body"].startswith(MARKER)]
    assert len(comments) == 4 and len(ours) == 1 and ours[0]["body"] == report
