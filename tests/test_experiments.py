"""A queued two-point sweep with DVC experiments on the tiny configuration: `dvc exp run --queue -S` with a comma
list, `dvc queue start -j 1` (a real celery worker), then both runs and their metrics in `dvc exp show`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from project_copies import committed_copy
from test_pipeline_e2e import run

pytestmark = pytest.mark.slow  # runs DVC experiments

QUEUE_TIMEOUT_S = 420


def queue_states(project: Path) -> dict[str, str]:
    """Experiment name -> state (Queued, Running, Success, Failed) from `dvc queue status`."""
    states = {}
    for line in run(["dvc", "queue", "status"], project).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in {"Queued", "Running", "Success", "Failed"}:
            states[parts[1]] = parts[-1]
    return states


def wait_for_queue(project: Path, names: list[str]) -> dict[str, str]:
    """Poll the queue until every named experiment finished; fail with the worker's logs otherwise."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while time.monotonic() < deadline:
        states = queue_states(project)
        if all(states.get(name) in {"Success", "Failed"} for name in names):
            return states
        time.sleep(2)
    logs = "\n".join(run(["dvc", "queue", "logs", name], project, check=False).stdout[-2000:] for name in names)
    raise AssertionError(f"queued experiments did not finish in {QUEUE_TIMEOUT_S} s: {queue_states(project)}\n{logs}")


@pytest.fixture(scope="module")
def sweep(pristine_pipeline, tmp_path_factory) -> tuple[Path, list[str], tuple[float, float]]:
    """A committed project after a queued two-point learning-rate sweep ran to the end; the experiments' names
    and their learning rates (half and twice the template's)."""
    project = committed_copy(pristine_pipeline[0], tmp_path_factory.mktemp("experiments") / "project")
    baseline = yaml.safe_load((project / "params.yaml").read_text())["train"]["learning_rate"]
    rates = (float(f"{baseline / 2:.3g}"), float(f"{baseline * 2:.3g}"))
    values = ",".join(str(rate) for rate in rates)
    queued = run(["dvc", "exp", "run", "--queue", "-S", f"train.learning_rate={values}"], project).stdout
    names = [line.split("'")[1] for line in queued.splitlines() if line.startswith("Queued experiment")]
    assert len(names) == 2, queued
    run(["dvc", "queue", "start", "-j", "1"], project)
    try:
        states = wait_for_queue(project, names)
    finally:
        run(["dvc", "queue", "stop"], project, check=False)  # the worker would stop once idle; do not leave it
    failed = [name for name in names if states[name] != "Success"]
    assert not failed, "\n".join(run(["dvc", "queue", "logs", name], project, check=False).stdout[-3000:] for name in failed)
    return project, names, rates


def test_both_sweep_points_have_params_and_metrics(sweep) -> None:
    project, names, rates = sweep
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    baseline = next(row for row in shown if row["rev"] != "workspace")
    runs = {r["name"]: r["data"] for e in baseline["experiments"] or [] for r in e["revs"]}
    assert set(names) <= set(runs), runs.keys()
    recorded = sorted(runs[name]["params"]["params.yaml"]["data"]["train"]["learning_rate"] for name in names)
    assert recorded == pytest.approx(sorted(rates))
    for name in names:
        evaluate = runs[name]["metrics"]["metrics/evaluate.json"]["data"]
        assert 0.0 <= evaluate["finetuned"]["ndcg@10"] <= 1.0 and evaluate["verdict"] in {"ship", "marginal", "regression"}
        assert runs[name]["metrics"]["metrics/train.json"]["data"]["steps"] > 0
    # the experiments ran beside the workspace, which still holds the committed baseline
    assert "Data and pipelines are up to date." in run(["dvc", "status"], project).stdout


def test_exp_show_md_lists_the_runs_with_their_metrics(sweep) -> None:
    project, names, rates = sweep
    table = run(["dvc", "exp", "show", "--md", "--drop", ".*", "--keep",
                 r"Experiment|State|^train\.learning_rate$|^finetuned\.ndcg@10$|^verdict$"], project).stdout
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Experiment", "State", "finetuned.ndcg@10", "verdict", "train.learning_rate"]
    for name, rate in zip(names, rates):
        row = next(line for line in table.splitlines() if f"[{name}]" in line)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "Success" and float(cells[4]) == pytest.approx(rate) and 0.0 <= float(cells[2]) <= 1.0
