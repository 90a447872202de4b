"""`python -m embedft.reporting.pr_report` on a real git + DVC project with two commits of different metrics, and
`python -m embedft.reporting.pr_comment` against a stand-in `gh` that keeps the pull request's comments in a file."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from project_copies import committed_copy
from test_pipeline_e2e import TEMPLATE_ROOT, run, set_params

from embedft.reporting.pr_report import MARKER, ReportInputs, change, number, sampled, stale_results, verdict_section


@pytest.fixture(scope="module")
def project(reproduced_pipeline, tmp_path_factory) -> Path:
    return committed_copy(reproduced_pipeline[0], tmp_path_factory.mktemp("report") / "project")


@pytest.fixture(scope="module")
def two_commits(project: Path) -> dict:
    """The report of the first commit against itself, then a second commit with other params and metrics
    (committed without `dvc repro`, so its results are stale) and its report against the first."""
    unchanged = run([sys.executable, "-m", "embedft.reporting.pr_report", "--against", "HEAD"], project).stdout
    # values relative to the copy's: the shared pipeline's params depend on which tests ran before
    old_rate = yaml.safe_load((project / "params.yaml").read_text())["train"]["learning_rate"]
    set_params(project, {"train": {"learning_rate": old_rate * 3}})
    evaluate_path = project / "metrics" / "evaluate.json"
    evaluate = json.loads(evaluate_path.read_text())
    old_ndcg = evaluate["finetuned"]["ndcg@10"]
    evaluate["finetuned"]["ndcg@10"] = round(old_ndcg - 0.25, 6)
    evaluate["comparisons"]["finetuned_vs_base"].update(difference=-0.25, ci_low=-0.4, ci_high=-0.1)
    old_verdict = evaluate["verdict"]
    evaluate["verdict"] = "ship" if old_verdict == "regression" else "regression"
    evaluate_path.write_text(json.dumps(evaluate, indent=2, sort_keys=True) + "\n")
    curve = (project / "plots" / "recall_at_k.csv").read_text().splitlines()
    k, base, finetuned, *rest = curve[1].split(",")
    curve[1] = ",".join([k, base, "0.123456", *rest])
    (project / "plots" / "recall_at_k.csv").write_text("\n".join(curve) + "\n")
    run(["git", "commit", "-q", "-am", "second run"], project)
    output = project / "review" / "report.md"
    printed = run([sys.executable, "-m", "embedft.reporting.pr_report", "--against", "HEAD~1", "--label", "#7",
                   "--plots-url", "https://example.invalid/plots", "--output", str(output)], project).stdout
    return {"unchanged": unchanged, "report": output.read_text(), "printed": printed, "old_ndcg": old_ndcg,
            "new_ndcg": evaluate["finetuned"]["ndcg@10"], "old_verdict": old_verdict, "new_verdict": evaluate["verdict"],
            "old_rate": old_rate}


def table_rows(markdown: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("| ")]


@pytest.mark.slow
def test_report_of_unchanged_commit_says_so(two_commits: dict) -> None:
    report = two_commits["unchanged"]
    assert report.startswith(MARKER + "\n")
    assert "No metrics changed." in report and "No params changed." in report
    assert "The committed metrics match the committed params, code and data" in report
    assert "unchanged from HEAD" in report


@pytest.mark.slow
def test_report_shows_metric_and_param_changes_and_the_verdict(two_commits: dict) -> None:
    report, old, new = two_commits["report"], two_commits["old_ndcg"], two_commits["new_ndcg"]
    assert report.startswith(MARKER + "\n") and "report: wrote" in two_commits["printed"]
    rows = table_rows(report)
    assert ["metrics/evaluate.json", "finetuned.ndcg@10", number(old), number(new), change(old, new)] in rows
    before, after = two_commits["old_verdict"], two_commits["new_verdict"]
    assert ["metrics/evaluate.json", "verdict", before, after, "—"] in rows
    rate = two_commits["old_rate"]
    assert ["params.yaml", "train.learning_rate", number(rate), number(rate * 3), change(rate, rate * 3)] in rows
    assert ["finetuned", number(old), number(new), change(old, new)] in rows  # the headline table
    assert f"**Verdict: {after}** (HEAD~1: {before})" in report
    assert "**-0.2500** (95% CI -0.4000 .. -0.1000" in report
    assert ("**Regression**: the fine-tuned model is worse" in report) == (after == "regression")


def test_verdict_section_warns_of_a_regression_and_a_suspected_leak() -> None:
    comparison = {"difference": -0.03, "ci_low": -0.05, "ci_high": -0.01, "p_value": 0.002, "wins": 3, "ties": 10, "losses": 20}
    new = {"verdict": "regression", "suspected_leak": 1, "relative_gain": 0.62, "test_queries": 33,
           "comparisons": {"finetuned_vs_base": comparison}, "base": {"ndcg@10": 0.5}, "finetuned": {"ndcg@10": 0.47},
           "leakage": {"exact": 2, "normalised": 3, "near_duplicate": 5}}
    inputs = ReportInputs("main", "#3", "ndcg@10", None, new, {}, {}, [], {})
    text = "\n".join(verdict_section(inputs))
    assert "**Verdict: regression** (main: no verdict)" in text
    assert "**Regression**: the fine-tuned model is worse than the base model on ndcg@10." in text
    assert "A 62% relative gain is suspicious" in text
    assert "Leakage check: 2 test queries verbatim in the training pairs, 3 after normalisation, 5 near-duplicates." in text
    assert "| finetuned | — | 0.47 | — |" in text


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
    for title in ("nDCG@10 by embedding width", "Recall@k by system", "Training loss", "Learning rate"):
        assert f"**{title}**: #7" in report
    recall = report.split("**Recall@k by system**")[1].split("**", 1)[0]
    finetuned = next(row for row in table_rows(recall) if row[0] == "finetuned")
    assert finetuned[1].startswith("0.1235 (") and finetuned[1].endswith(")")  # k=1 moved, with its change
    assert "change from HEAD~1 in brackets" in recall


@pytest.mark.slow
def test_unknown_revision_is_one_clear_error_and_writes_nothing(project: Path) -> None:
    output = project / "review" / "typo.md"
    result = run([sys.executable, "-m", "embedft.reporting.pr_report", "--against", "mian", "--output", str(output)], project, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --against: unknown git revision 'mian'; is it fetched? (CI: check out with fetch-depth: 0)"
    assert not output.exists()


def test_stale_results_ignore_data_that_was_not_pulled() -> None:
    status = {
        "train": [{"changed deps": {"data/negatives": "deleted", "stages/train.py": "modified",
                                    "params.yaml": {"train.learning_rate": "modified"}}},
                  {"changed outs": {"models/finetuned": "not in cache"}}],
        "evaluate": [{"changed deps": {"models/finetuned": "deleted"}}],
        "ingest": ["always changed"],
    }
    assert stale_results(status) == {"train": ["stages/train.py modified", "params.yaml: train.learning_rate modified"]}


def test_sampled_keeps_first_and_last() -> None:
    assert sampled([str(i) for i in range(1, 86)], 8) == ["1", "13", "25", "37", "49", "61", "73", "85"]
    assert sampled(["1", "2"], 8) == ["1", "2"]


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
