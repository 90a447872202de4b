"""The README and docs/ as a new user meets them: every relative link and anchor resolves, the README fits two
screens, its pipeline graph is the one dvc.yaml declares, every `make` target it names exists, and every command it
shows is either run here (the slow test, in a committed copy of the project) or listed as checked by hand."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
MAKE_TARGET = re.compile(r"^([A-Za-z][\w.-]*)[ \t]*:(?!=)", re.M)
COMMAND_START = ("make", "dvc", "python", "git", "pip", ".")
"""A code line or inline code span starting with one of these words is a command the user may type."""

# Every command the README shows, and how it is checked. "test": test_readme_commands_run below runs it (or,
# for make targets that install or train, `make -n` shows what it would run). Anything else is the note of a
# check by hand or by another test; a README command that is in neither list fails test_every_readme_command_is_checked.
COMMANDS = {
    "make run": "test (make -n: `dvc repro` with .venv/bin on PATH); the whole run is tests/test_pipeline_e2e.py's dvc repro",
    "make test": "test (make -n: pytest on TEST_WORKERS workers); CI runs it",
    "make quick": "test (make -n: pytest -m 'not slow')",
    'make run TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"':
        "test (make -n: pip installs that spec); the CUDA index itself needs a network: by hand",
    ". .venv/bin/activate": "test (then `dvc --version` resolves to the venv's dvc)",
    "make metrics": "test",
    "make plots": "test (dvc_plots/index.html written, its path printed)",
    "make diff REV=main": "test",
    "make report REV=main": "test",
    "make report > report.md": "test (the file holds only the Markdown)",
    "dvc metrics show": "test (through make metrics)",
    "dvc metrics diff": "test (through make diff)",
    "dvc params diff": "test (through make diff)",
    "dvc plots show": "test (through make plots)",
    "dvc dag": "test",
    "dvc repro": "tests/test_pipeline_e2e.py",
    "dvc repro --force": "tests/test_pipeline_e2e.py (a forced rerun with nothing changed leaves the metrics unchanged)",
    "dvc add data/legal": "test",
    "dvc push": "test, as `dvc push data/legal.dvc` to the default local remote (the copy has no pipeline outputs to push)",
    "dvc import https://github.com/your-org/datasets legal -o data/legal":
        "test with a local source repository in place of the URL (no network in the tests)",
    "dvc update data/legal.dvc": "test",
    "python -m stages.publish": "tests/test_publish.py (against a Hub look-alike on 127.0.0.1)",
    "python -m stages.<name>": "a pattern, not a command: dvc.yaml's cmd of every stage (tests/test_stage_deps.py)",
}


def without_code(text: str) -> str:
    """The Markdown with fenced blocks and inline code removed (links and headings inside them do not count)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link text kept, lower case, punctuation dropped except '-' and '_',
    spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(without_code(path.read_text(encoding="utf-8")))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def code_commands(text: str) -> list[str]:
    """Commands in fenced shell blocks (one per line, comments dropped) and in inline code spans."""
    commands = []
    for language, body in FENCE.findall(text):
        if language in ("bash", "sh", "shell", "console", ""):
            for line in body.splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if line and not line.startswith("#"):
                    commands.append(line)
    commands += [span.strip("`") for span in INLINE_CODE.findall(FENCE.sub("", text))]
    return [c for c in commands if c.split(" ", 1)[0] in COMMAND_START and " " in c]


def makefile_targets() -> set[str]:
    return set(MAKE_TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))


def test_readme_fits_two_screens() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (at most {README_MAX_LINES})"


def test_slug_follows_github() -> None:
    assert slug("Reading `dvc metrics diff`") == "reading-dvc-metrics-diff"
    assert slug("Using the fine-tuned model: artifacts, ONNX, Hugging Face Hub") == \
        "using-the-fine-tuned-model-artifacts-onnx-hugging-face-hub"
    assert slug("Leakage, forgetting and per-query results") == "leakage-forgetting-and-per-query-results"
    assert slug("round_2 [docs](x.md)") == "round_2-docs"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading '#{anchor}' in {linked.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(README)}
    missing = [str(page.relative_to(ROOT)) for page in DOC_FILES[1:] if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_make_targets_in_the_docs_exist() -> None:
    targets = makefile_targets()
    named = {command.split()[1] for path in DOC_FILES for command in code_commands(path.read_text(encoding="utf-8"))
             if command.startswith("make ") and not command.split()[1].startswith("-")}
    named = {name for name in named if "=" not in name}
    assert {"run", "test", "metrics", "plots", "diff", "report"} <= named, "the README names the everyday make targets"
    assert named <= targets, f"make targets the docs name but the Makefile lacks: {sorted(named - targets)}"


def test_every_readme_command_is_checked() -> None:
    unchecked = sorted(set(code_commands(README.read_text(encoding="utf-8"))) - set(COMMANDS))
    assert not unchecked, f"README commands neither run by a test nor listed as checked by hand in COMMANDS: {unchecked}"


def substitute(value: str, variables: dict) -> str:
    """dvc.yaml's ${a.b} interpolation, from params.yaml (and ${item} of a foreach)."""
    def lookup(match: re.Match) -> str:
        node = variables
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)
    return re.sub(r"\$\{([\w.]+)\}", lookup, value)


def declared_stages(params: dict) -> dict[str, tuple[list[str], list[str], bool]]:
    """Every stage of dvc.yaml under these params: name -> (deps, outputs, optional), foreach stages expanded."""
    stages = {}
    for name, body in yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"].items():
        if "foreach" in body:
            items = yaml.safe_load(substitute(body["foreach"], params)) if isinstance(body["foreach"], str) else body["foreach"]
            instances = [(f"{name}@{item}", body["do"], {**params, "item": item}) for item in items]
        else:
            instances = [(name, body, params)]
        for stage, spec, variables in instances:
            outs = [substitute(next(iter(o)) if isinstance(o, dict) else o, variables)
                    for key in ("outs", "metrics", "plots") for o in spec.get(key, [])]
            stages[stage] = ([substitute(d, variables) for d in spec.get("deps", [])], outs, "foreach" in body)
    return stages


def stage_graph(stages: dict[str, tuple[list[str], list[str], bool]]) -> set[tuple[str, str]]:
    """The transitive reduction of 'B reads a file A writes': the arrows a reader needs to see the order."""
    def overlaps(a: str, b: str) -> bool:
        return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
    edges = {(a, b) for a, (_, outs, _) in stages.items() for b, (deps, _, _) in stages.items()
             if a != b and any(overlaps(o, d) for o in outs for d in deps)}

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for a, b in edges:
                if a == node and (a, b) != skip and b not in seen:
                    seen.add(b)
                    todo.append(b)
        return seen
    return {(a, b) for a, b in edges if b not in reachable(a, (a, b))}


def readme_graph() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(solid, dashed) arrows of the README's Mermaid flowchart, by node label."""
    blocks = [body for language, body in FENCE.findall(README.read_text(encoding="utf-8")) if language == "mermaid"]
    assert len(blocks) == 1 and blocks[0].lstrip().startswith("flowchart"), "README needs one Mermaid flowchart"
    node = r'(\w+)(?:\["([^"]+)"\])?'
    labels: dict[str, str] = {}
    solid, dashed = set(), set()
    for line in blocks[0].splitlines()[1:]:
        match = re.fullmatch(rf"\s*{node}\s*(-->|-\.->)\s*{node}\s*", line)
        if not match:
            assert not line.strip(), f"unreadable line in the README's graph: {line!r}"
            continue
        a, a_label, arrow, b, b_label = match.groups()
        for name, label in ((a, a_label), (b, b_label)):
            if label:
                labels[name] = label
        (solid if arrow == "-->" else dashed).add((a, b))

    def named(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(labels.get(a, a), labels.get(b, b)) for a, b in edges}
    return named(solid), named(dashed)


def test_readme_graph_is_the_pipeline() -> None:
    """The README's flowchart shows the stages and arrows of dvc.yaml, with every optional stage switched on (one
    export format, round 2): solid arrows into the default stages, dashed ones into the optional stages."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["export"]["formats"] = ["onnx"]
    params["rounds"]["extra"] = [2]
    stages = declared_stages(params)
    expected = stage_graph(stages)
    solid, dashed = readme_graph()
    assert solid | dashed == expected, (f"missing: {sorted(expected - solid - dashed)}; "
                                        f"not in dvc.yaml: {sorted((solid | dashed) - expected)}")
    assert {b for _, b in dashed} == {name for name, (_, _, optional) in stages.items() if optional}


# --- The commands themselves, in a committed copy of the project -------------------------------------------------

def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """A shell command as a user types it, without .venv on PATH (make and the activate script must find it)."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p).resolve() != Path(sys.prefix, "bin").resolve())
    # A user's shell has no parent make: CI's `make test` would otherwise hand its MAKELEVEL and flags down.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    env.update(PATH=path, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", DVC_NO_ANALYTICS="1")
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def project_copy(destination: Path) -> Path:
    """The working tree's files (tracked, and new ones git does not ignore) committed on `main` in a fresh repo,
    with the test's virtual environment as its .venv. Data and models are not there: only git-tracked results."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    (destination / ".venv").symlink_to(Path(sys.prefix))
    run("git init -q -b main && git add -A && git commit -q -m template", destination)
    return destination


@pytest.mark.slow  # runs DVC and make in a copy of the project
def test_readme_commands_run(tmp_path: Path) -> None:
    repo = project_copy(tmp_path / "repo")
    keep = "-o .venv/.installed-run -o .venv/.installed-test"  # the test's venv has no install stamps: never install here
    assert "dvc repro" in run(f"make -n {keep} run", repo).stdout
    assert "pytest -n 2" in run(f"make -n {keep} test", repo).stdout
    assert 'pytest -m "not slow"' in run(f"make -n {keep} quick", repo).stdout
    spec = 'TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"'
    install = run(f"make -n run {spec}", repo).stdout  # another spec is another stamp: torch is reinstalled
    assert "pip install --quiet torch --index-url https://download.pytorch.org/whl/cu124" in install
    assert "pip install --quiet -c constraints.txt -e ." in install and ".[test]" not in install
    dvc = Path(run(". .venv/bin/activate && command -v dvc", repo).stdout.strip())
    assert dvc.resolve().parent == (repo / ".venv" / "bin").resolve()

    assert "metrics/evaluate.json" in run(f"make {keep} metrics", repo).stdout
    plots = run(f"make {keep} plots", repo)
    assert "dvc_plots/index.html" in plots.stdout and (repo / "dvc_plots" / "index.html").is_file()
    diff = run(f"make {keep} diff REV=main", repo)  # the same commit: nothing changed
    assert "dvc metrics diff main" in diff.stderr and "dvc params diff main" in diff.stderr
    run(f"make {keep} report REV=main > report.md", repo)
    report = (repo / "report.md").read_text()
    assert report.startswith("<!-- embedding-finetune-report -->"), report[:200]  # the echoed command went to stderr
    assert "ingest" in run(". .venv/bin/activate && dvc dag", repo).stdout

    legal = repo / "data" / "legal"
    legal.mkdir()
    (legal / "corpus.jsonl").write_text('{"_id": "d1", "title": "Lease", "text": "The tenant pays rent."}\n')
    run(". .venv/bin/activate && dvc add data/legal && dvc push data/legal.dvc", repo)
    assert (repo / "data" / "legal.dvc").is_file() and "/legal" in (repo / "data" / ".gitignore").read_text()
    assert (tmp_path / "dvc-storage" / "embedding-finetune").is_dir()  # the default remote, beside the clone

    source = tmp_path / "datasets"  # stands in for https://github.com/your-org/datasets
    source.mkdir()
    (source / "legal").mkdir()
    (source / "legal" / "corpus.jsonl").write_text('{"_id": "d1", "text": "v1"}\n')
    activate = f". {repo}/.venv/bin/activate"
    run(f"{activate} && git init -q -b main && dvc init -q && dvc add legal && git add -A && git commit -q -m v1", source)
    run(f"rm -rf data/legal data/legal.dvc && . .venv/bin/activate && dvc import {source} legal -o data/legal", repo)
    assert (repo / "data" / "legal" / "corpus.jsonl").read_text() == '{"_id": "d1", "text": "v1"}\n'
    (source / "legal" / "corpus.jsonl").write_text('{"_id": "d1", "text": "v2"}\n')
    run(f"{activate} && dvc add legal && git commit -q -am v2", source)
    run(". .venv/bin/activate && dvc update data/legal.dvc", repo)
    assert (repo / "data" / "legal" / "corpus.jsonl").read_text() == '{"_id": "d1", "text": "v2"}\n'
