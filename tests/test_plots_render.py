"""`dvc plots show` on a reproduced template copy: the plots exist, and they really draw in a headless browser.

The page DVC writes loads vega, vega-lite and vega-embed from a CDN, which CI may not reach, so the page is
rendered with a custom `--html-template` that loads them from `.ci/node/` (npm) instead. Chromium dumps
the DOM after the charts are drawn, and takes a screenshot into `tests/artifacts/plots.png`.
`.ci/install_browser.sh` installs both; without them the browser test skips and says what is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from test_pipeline_e2e import TEMPLATE_ROOT, run

pytestmark = pytest.mark.slow  # runs DVC and a headless browser

NODE_MODULES = TEMPLATE_ROOT / ".ci" / "node" / "node_modules"
SCRIPTS = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
ARTIFACTS = TEMPLATE_ROOT / "tests" / "artifacts"
TOP_LEVEL_PLOTS = ("nDCG@10 by embedding width", "Recall@k by system", "Training loss", "Learning rate",
                   "Dev metrics during training")
STAGE_PLOTS: tuple[str, ...] = ()  # plot files are plain outputs: each is drawn once, by its top-level chart
BROWSER_TIMEOUT_S = 180

# Loads the libraries from disk, draws every chart as SVG (so the drawing is in the DOM) and, once every
# vegaEmbed call has settled, appends <pre id="render-status"> with "ok" or the error of each chart.
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
  <style>body {{ font-family: sans-serif; background: white; }}</style>
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


def test_plots_show_lists_every_chart_with_data(repo: Path) -> None:
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert not shown.get("errors"), shown["errors"]
    assert set(shown["data"]) == {*TOP_LEVEL_PLOTS, *STAGE_PLOTS}
    for name, plots in shown["data"].items():
        assert len(plots) == 1 and plots[0]["type"] == "vega", name
        assert plots[0]["content"]["data"]["values"], f"{name} has no data"

    train = json.loads((repo / "metrics" / "train.json").read_text())
    loss = shown["data"]["Training loss"][0]["content"]
    assert loss["title"]["text"] == "Training loss"
    assert [int(row["step"]) for row in loss["data"]["values"]] == list(range(1, train["steps"] + 1))
    assert all(float(row["loss"]) > 0 for row in loss["data"]["values"])
    rate = shown["data"]["Learning rate"][0]["content"]["data"]["values"]
    assert {int(row["step"]) for row in rate} == set(range(1, train["steps"] + 1))
    ndcg = shown["data"]["nDCG@10 by embedding width"][0]["content"]["data"]["values"]
    assert {row["field"] for row in ndcg} == {f"{model}_{precision}" for model in ("base", "finetuned")
                                              for precision in ("float32", "int8", "binary")}
    assert {"64", "32"} <= {row["dim"] for row in ndcg}
    recall = shown["data"]["Recall@k by system"][0]["content"]["data"]["values"]
    assert {row["field"] for row in recall} == {"base", "finetuned", "bm25", "hybrid"}


def test_plots_render_in_headless_chromium(chromium: str, repo: Path, tmp_path: Path) -> None:
    tags = "\n  ".join(f'<script src="{(NODE_MODULES / script).as_uri()}"></script>' for script in SCRIPTS)
    template = tmp_path / "template.html"
    template.write_text(HTML_TEMPLATE.format(script_tags=tags), encoding="utf-8")
    page_dir = tmp_path / "page"
    run(["dvc", "plots", "show", "-o", str(page_dir), "--html-template", str(template)], repo)
    page = page_dir / "index.html"
    html = page.read_text(encoding="utf-8")
    titles = (*TOP_LEVEL_PLOTS, *STAGE_PLOTS)
    assert "cdn.jsdelivr.net" not in html and html.count("vegaEmbed(") == len(titles)

    dom = run_browser([*browser_command(chromium, tmp_path / "profile"), "--dump-dom", page.as_uri()]).stdout
    status = re.search(r'<pre id="render-status">(.*?)</pre>', dom, re.S)
    assert status, f"the charts never finished rendering; DOM tail:\n{dom[-2000:]}"
    assert json.loads(status.group(1)) == ["ok"] * len(titles), status.group(1)
    svgs = re.findall(r'<svg[^>]*class="marks"[^>]*>.*?</svg>', dom, re.S)
    assert len(svgs) == len(titles), f"{len(svgs)} charts drawn, expected {len(titles)}"
    for title in titles:
        drawn = [svg for svg in svgs if f">{title}</text>" in svg]
        assert len(drawn) == 1, f"no chart titled {title!r}"
        lines = re.findall(r'<g class="mark-line role-mark[^"]*"[^>]*>(.*?)</g>', drawn[0], re.S)
        assert any(re.search(r'<path[^>]* d="M[\d.,-]+L', line) for line in lines), f"{title!r} draws no line"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "plots.png"
    screenshot.unlink(missing_ok=True)
    shutil.copy(page, ARTIFACTS / "plots.html")
    run_browser([*browser_command(chromium, tmp_path / "profile"), f"--screenshot={screenshot}",
                 "--window-size=1400,3000", page.as_uri()])
    assert screenshot.is_file(), "chromium wrote no screenshot"
    assert png_size(screenshot) == (1400, 3000)
    assert screenshot.stat().st_size > 50_000, f"screenshot is only {screenshot.stat().st_size} bytes: blank page?"
