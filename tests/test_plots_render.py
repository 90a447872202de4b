"""The charts of dvc.yaml: each names its axes and series, and `dvc plots show` really draws them in a headless
browser with those titles, one colour per series, and a log axis where x spans orders of magnitude.

The expected charts come from dvc.yaml's `plots:` (tests/declared_charts.py), not from a list here. The page DVC
writes loads vega, vega-lite and vega-embed from a CDN, which CI may not reach, so the page is rendered with a
custom `--html-template` that loads them from `.ci/node/` (npm) instead. Chromium dumps the DOM after the charts
are drawn (the checks read the SVG), and takes one screenshot per chart into `tests/artifacts/plots/`.
`.ci/install_browser.sh` installs both; without them the browser test skips and says what is missing.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from declared_charts import Chart, declared_charts
from test_pipeline_e2e import TEMPLATE_ROOT, run

from embedft.config import SYSTEM_LABELS, SYSTEMS, TruncateEvalParams
from embedft.evaluation.systems import RECALL_CURVE_KS, recall_curve
from embedft.evaluation.truncation import plot_table
from embedft.training.monitor import DEV_COLUMNS, DEV_FILE

NODE_MODULES = TEMPLATE_ROOT / ".ci" / "node" / "node_modules"
SCRIPTS = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
ARTIFACTS = TEMPLATE_ROOT / "tests" / "artifacts"
TEMPLATES = TEMPLATE_ROOT / ".dvc" / "plots"
CHARTS = declared_charts()
STAGE_PLOTS: tuple[str, ...] = ()  # plot files are plain outputs: each is drawn once, by its top-level chart
BROWSER_TIMEOUT_S = 180
CHART_WINDOW = (720, 400)
"""Browser window for one chart's screenshot: the 440 x 280 plot with its axis titles and legend."""

# Loads the libraries from disk, draws every chart as SVG (so the drawing is in the DOM) and, once every
# vegaEmbed call has settled, appends <pre id="render-status"> with "ok" or the error of each chart (hidden from
# the screenshots; the DOM dump still holds it).
HTML_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>DVC plots (offline)</title>
  {script_tags}
  <script>
    window.renderPromises = [];
    const embedFromNpm = window.vegaEmbed;
    window.vegaEmbed = (element, spec, options) => {{
      const promise = embedFromNpm(element, spec, Object.assign({{renderer: "svg", actions: false}}, options));
      window.renderPromises.push(promise);
      return promise;
    }};
    window.addEventListener("load", () => {{
      const status = document.createElement("pre");
      status.id = "render-status";
      if (typeof embedFromNpm !== "function") {{
        status.textContent = JSON.stringify(["vegaEmbed did not load"]);
        document.body.appendChild(status);
        return;
      }}
      Promise.allSettled(window.renderPromises).then((results) => {{
        status.textContent = JSON.stringify(results.map((r) => r.status === "fulfilled" ? "ok" : String(r.reason)));
        document.body.appendChild(status);
      }});
    }});
  </script>
  <style>body {{ font-family: sans-serif; background: white; }} #render-status {{ display: none; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser and the local vega libraries, or a skip that says how to get them.

    Session-scoped and requested first, so that a skip comes before the pipeline is reproduced.
    """
    browser = find_chromium()
    if browser is None:
        pytest.skip("chromium is not installed: run .ci/install_browser.sh (apt-get install chromium)")
    missing = [str(NODE_MODULES / script) for script in SCRIPTS if not (NODE_MODULES / script).is_file()]
    if missing:
        pytest.skip(f"vega libraries missing ({', '.join(missing)}): run .ci/install_browser.sh (npm install)")
    return browser


@pytest.fixture(scope="module")
def repo(reproduced_pipeline) -> Path:
    """The shared reproduced template copy, brought up to date (a no-op unless another test left it stale)."""
    repo = reproduced_pipeline[0]
    run(["dvc", "repro"], repo)
    return repo


def browser_command(browser: str, profile: Path) -> list[str]:
    """Headless chromium that touches no network and no user profile, and runs as root in CI."""
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--hide-scrollbars", "--enable-logging=stderr", f"--user-data-dir={profile}",
            "--virtual-time-budget=10000"]


def run_browser(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (no imaging library needed)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def encodings(spec: object) -> list[dict]:
    """Every ``encoding`` object of a Vega-Lite spec, its layers' included."""
    if isinstance(spec, list):
        return [found for item in spec for found in encodings(item)]
    if not isinstance(spec, dict):
        return []
    own = [spec["encoding"]] if isinstance(spec.get("encoding"), dict) else []
    return own + [found for value in spec.values() for found in encodings(value)]


def template(chart: Chart) -> dict:
    """The chart's Vega-Lite template from .dvc/plots/."""
    return json.loads((TEMPLATES / f"{chart.template}.json").read_text(encoding="utf-8"))


def chart_reading(file: str) -> Chart:
    """The one declared chart that draws ``file``."""
    (chart,) = [chart for chart in CHARTS if file in chart.files]
    return chart


# --- the definitions, without DVC ------------------------------------------------------------------------

@pytest.mark.parametrize("chart", CHARTS, ids=lambda chart: chart.title)
def test_every_chart_names_its_axes_and_colours_by_series(chart: Chart) -> None:
    assert chart.x_label and chart.y_label, f"{chart.title!r} needs x_label and y_label in dvc.yaml"
    for label in (chart.x_label, chart.y_label):  # the metric, and its unit or range in brackets
        assert label not in (chart.x, *chart.series) and re.search(r"\(.+\)", label), f"{chart.title!r}: {label!r}"
    assert (TEMPLATES / f"{chart.template}.json").is_file(), f"{chart.title!r}: template {chart.template!r} is not in .dvc/plots/"
    channels = {name: value for encoding in encodings(template(chart)) for name, value in encoding.items()}
    assert channels["color"]["field"] == "field", "one colour per series (DVC's `field`: the y column)"
    assert channels["strokeDash"]["field"] == "rev", "one dash pattern per revision, so `dvc plots diff` tells them apart"
    assert channels["x"]["title"] == "<DVC_METRIC_X_LABEL>" and channels["y"]["title"] == "<DVC_METRIC_Y_LABEL>"


def test_recall_curve_has_a_log_x_axis() -> None:
    """k runs from 1 to 1000: on a linear axis every cut-off below 100 would sit in the first tenth."""
    assert max(RECALL_CURVE_KS) / min(RECALL_CURVE_KS) >= 100
    (x,) = [encoding["x"] for encoding in encodings(template(chart_reading("plots/recall_at_k.csv"))) if "x" in encoding]
    assert x["scale"]["type"] == "log"
    for chart in CHARTS:  # the other x axes (steps, widths) are linear
        if chart.files != ("plots/recall_at_k.csv",):
            assert all(e["x"].get("scale", {}).get("type") != "log" for e in encodings(template(chart)) if "x" in e), chart.title


def test_plot_files_have_the_declared_series() -> None:
    """The column headers the stages write are the series dvc.yaml draws (default params), legend names included."""
    precisions = TruncateEvalParams().precisions
    report = {model: {"64": {p: {"ndcg@10": 0.5} for p in precisions}} for model in ("base", "finetuned")}
    ndcg_header = plot_table(report, TruncateEvalParams(dims=[64]), "ndcg@10").splitlines()[0].split(",")
    assert set(ndcg_header[1:]) == set(chart_reading("plots/ndcg_by_dim.csv").series) and ndcg_header[0] == "dim"
    # Off by default: evaluate.concatenated false, no evaluate.rerank_cross_encoder.
    runs = {name: {"q": {"d": 1.0}} for name in SYSTEMS if name not in ("concatenated", "reranked")}
    recall_header = recall_curve({"q": {"d": 1}}, runs, depth=1).splitlines()[0].split(",")
    assert recall_header[1:] == list(chart_reading("plots/recall_at_k.csv").series) == [SYSTEM_LABELS[n] for n in runs]
    assert list(chart_reading(f"plots/train/{DEV_FILE}").series) == list(DEV_COLUMNS.values())


# --- dvc plots show on a reproduced copy ----------------------------------------------------------------

@pytest.mark.slow
def test_plots_show_lists_every_chart_with_data(repo: Path) -> None:
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert not shown.get("errors"), shown["errors"]
    assert set(shown["data"]) == {*(chart.title for chart in CHARTS), *STAGE_PLOTS}
    for chart in CHARTS:
        plots = shown["data"][chart.title]
        assert len(plots) == 1 and plots[0]["type"] == "vega", chart.title
        content = plots[0]["content"]
        assert content["title"]["text"] == chart.title
        assert content["data"]["values"], f"{chart.title} has no data"
        assert [row["field"] for row in content["data"]["values"]][:1] == [chart.series[0]]  # colour order = dvc.yaml's
        assert {row["field"] for row in content["data"]["values"]} == set(chart.series), chart.title

    train = json.loads((repo / "metrics" / "train.json").read_text())
    loss = shown["data"]["Training loss"][0]["content"]["data"]["values"]
    assert [int(row["step"]) for row in loss] == list(range(1, train["steps"] + 1))
    assert all(float(row["loss"]) > 0 for row in loss)
    rate = shown["data"]["Learning rate"][0]["content"]["data"]["values"]
    assert {int(row["step"]) for row in rate} == set(range(1, train["steps"] + 1))
    dev = shown["data"]["Dev metrics during training"][0]["content"]["data"]["values"]
    assert {int(row["step"]) for row in dev} == {0, train["steps"]}  # the base model, then the last step
    ndcg = shown["data"]["nDCG@10 by embedding width"][0]["content"]["data"]["values"]
    assert {"64", "32"} <= {row["dim"] for row in ndcg}


def texts(svg: str, role: str) -> list[str]:
    """The texts of one Vega role in a drawn chart (role-title-text, role-axis-title, role-legend-label, ...)."""
    groups = re.findall(rf'<g class="mark-text {role}\b[^"]*"[^>]*>(.*?)</g>', svg, re.S)
    return [html.unescape(text) for group in groups for text in re.findall(r"<text[^>]*>(.*?)</text>", group, re.S)]


def drawn_lines(svg: str) -> dict[str, dict]:
    """Each drawn line by its series name: its stroke colour and the x coordinates of its points."""
    lines = {}
    for path in re.findall(r'<path [^>]*aria-roledescription="line mark"[^>]*>', svg):
        # "<x title>: 1; <y title>: 0.5; series: base; revision: workspace" (axis titles may hold "; " themselves)
        label = html.unescape(re.search(r'aria-label="([^"]*)"', path).group(1))
        series = re.search(r"(?:^|; )series: (.*?)(?:; (?:revision|field): |$)", label).group(1)
        points = re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", re.search(r' d="([^"]*)"', path).group(1))
        lines[series] = {"stroke": re.search(r' stroke="([^"]+)"', path).group(1), "xs": [float(x) for x, _ in points]}
    return lines


def check_chart(chart: Chart, svg: str, repo: Path) -> None:
    """The drawn chart shows its title, both axis titles, every series by name in one colour each, and a log x
    axis where the template has one (the points' spacing follows log x)."""
    assert texts(svg, "role-title-text") == [chart.title]
    assert texts(svg, "role-axis-title") == [chart.x_label, chart.y_label], chart.title
    assert texts(svg, "role-legend-title") == ["series", "revision"], chart.title
    assert texts(svg, "role-legend-label") == [*chart.series, "workspace"], chart.title
    lines = drawn_lines(svg)
    assert sorted(lines) == sorted(chart.series), f"{chart.title!r} draws {sorted(lines)}"
    assert len({line["stroke"] for line in lines.values()}) == len(chart.series), f"{chart.title!r}: colours repeat"
    assert all(len(line["xs"]) >= 2 for line in lines.values()), f"{chart.title!r}: a series draws no line"
    if any(e["x"].get("scale", {}).get("type") == "log" for e in encodings(template(chart)) if "x" in e):
        values = [float(row.split(",")[0]) for row in (repo / chart.files[0]).read_text().splitlines()[1:]]
        drawn = next(iter(lines.values()))["xs"]
        expected = [math.log(v / values[0]) / math.log(values[-1] / values[0]) for v in values]
        assert [(x - drawn[0]) / (drawn[-1] - drawn[0]) for x in drawn] == pytest.approx(expected, abs=0.01)


def chart_pages(page: Path) -> dict[str, Path]:
    """One page per chart beside DVC's ``index.html`` (its head and body with only that chart's div), by title."""
    index = page.read_text(encoding="utf-8")
    divs = re.findall(r'<div id = "[^"]*">.*?</div>', index, re.S)
    before, after = index.split(divs[0], 1)[0], index.rsplit(divs[-1], 1)[1]
    pages = {}
    for number, div in enumerate(divs):
        title = json.loads(re.search(r"var spec = (\{.*\});", div, re.S).group(1))["title"]["text"]
        pages[title] = page.with_name(f"chart{number}.html")
        pages[title].write_text(before + div + after, encoding="utf-8")
    return pages


def slug(title: str) -> str:
    """A file name for a chart's screenshot: ``Recall@k by system`` -> ``recall_k_by_system``."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


@pytest.mark.slow
def test_plots_render_in_headless_chromium(chromium: str, repo: Path, tmp_path: Path) -> None:
    tags = "\n  ".join(f'<script src="{(NODE_MODULES / script).as_uri()}"></script>' for script in SCRIPTS)
    html_template = tmp_path / "template.html"
    html_template.write_text(HTML_TEMPLATE.format(script_tags=tags), encoding="utf-8")
    page_dir = tmp_path / "page"
    run(["dvc", "plots", "show", "-o", str(page_dir), "--html-template", str(html_template)], repo)
    page = page_dir / "index.html"
    titles = [*(chart.title for chart in CHARTS), *STAGE_PLOTS]
    assert "cdn.jsdelivr.net" not in page.read_text(encoding="utf-8")

    dom = run_browser([*browser_command(chromium, tmp_path / "profile"), "--dump-dom", page.as_uri()]).stdout
    status = re.search(r'<pre id="render-status">(.*?)</pre>', dom, re.S)
    assert status, f"the charts never finished rendering; DOM tail:\n{dom[-2000:]}"
    assert json.loads(status.group(1)) == ["ok"] * len(titles), status.group(1)
    svgs = re.findall(r'<svg[^>]*class="marks"[^>]*>.*?</svg>', dom, re.S)
    assert len(svgs) == len(titles), f"{len(svgs)} charts drawn, expected {len(titles)}"
    for chart in CHARTS:
        drawn = [svg for svg in svgs if texts(svg, "role-title-text") == [chart.title]]
        assert len(drawn) == 1, f"no chart titled {chart.title!r}"
        check_chart(chart, drawn[0], repo)

    shots = ARTIFACTS / "plots"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    shutil.copy(page, ARTIFACTS / "plots.html")
    pages = chart_pages(page)
    assert sorted(pages) == sorted(titles)
    for title, chart_page in pages.items():
        screenshot = shots / f"{slug(title)}.png"
        run_browser([*browser_command(chromium, tmp_path / "profile"), f"--screenshot={screenshot}",
                     f"--window-size={CHART_WINDOW[0]},{CHART_WINDOW[1]}", chart_page.as_uri()])
        assert screenshot.is_file(), f"chromium wrote no screenshot of {title!r}"
        assert png_size(screenshot) == CHART_WINDOW
        assert screenshot.stat().st_size > 8_000, f"{screenshot} is only {screenshot.stat().st_size} bytes: blank page?"
