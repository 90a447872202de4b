"""A heavy stage killed part-way (SIGTERM or SIGKILL) leaves nothing DVC would take as complete.

Each stage is stopped at the worst moment: just as it is about to rename its first finished output into
place. A ``sitecustomize`` put on the stage's PYTHONPATH pauses ``os.replace`` of our temporaries (and only
those: their names contain ``.tmp-``), writes a marker, and waits; the test then signals the whole `dvc repro`
process group. Afterwards no output may hold anything ``dvc.lock`` does not record (DVC deletes a stage's
outputs before running it, so "deleted" is expected; "modified" would be a half-written one), `dvc status` must
show the stage as changed, and the next `dvc repro` must complete and leave the workspace up to date.

Each stage gets one signal; what a signal does is the same in every stage (the handler and the temporaries are
shared code). After a SIGTERM the params change is undone and `git checkout` brings back the git-tracked reports
DVC deleted; then `dvc status` must find the stage as it was, since `dvc checkout` brought back exactly the last
complete cached outputs. After a SIGKILL the change stays, and the final `dvc repro` runs those stages and clears
what they left behind; their changes (a review size, a bootstrap count) rerun little after them, so the final run
stays short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_project
from test_pipeline_e2e import run, set_params

pytestmark = pytest.mark.slow  # kills DVC stages

# stage -> a params change that makes that stage (and those after it) rerun, and the signal it is stopped with
HEAVY_STAGES = {
    "embed_corpus": ({"base": {"document_prompt": "passage: "}}, signal.SIGTERM),
    "synthesize": ({"synthesize": {"review": {"kept": 7}}}, signal.SIGKILL),
    "mine_negatives": ({"mine_negatives": {"range_max": 5}}, signal.SIGTERM),
    "train": ({"train": {"learning_rate": 1e-4}}, signal.SIGTERM),
    "evaluate": ({"evaluate": {"bootstrap_resamples": 300}}, signal.SIGKILL),
}

PAUSE_BEFORE_RENAME = '''
import os, time
_replace = os.replace
def _paused_replace(src, dst, *args, **kwargs):
    if ".tmp-" in os.fspath(src):
        with open(os.environ["PAUSE_MARKER"], "w") as marker:
            marker.write(os.fspath(dst))
        time.sleep(600)
    return _replace(src, dst, *args, **kwargs)
os.replace = _paused_replace
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory, pristine_pipeline) -> Path:
    repo = copy_project(pristine_pipeline[0], tmp_path_factory.mktemp("interrupt") / "project")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "reproduced"], repo)
    hook = repo.parent / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_BEFORE_RENAME, encoding="utf-8")
    return repo


def repro_killed_before_rename(repo: Path, stage: str, kill_with: signal.Signals) -> tuple[str, str]:
    """Start `dvc repro -s stage`, wait until it is about to publish an output, signal it; return the output path."""
    marker = repo.parent / "paused"
    marker.unlink(missing_ok=True)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(repo.parent / "hook"), PAUSE_MARKER=str(marker), HF_HUB_OFFLINE="1")
    process = subprocess.Popen(["dvc", "repro", "-s", stage], cwd=repo, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{stage} never reached its first rename:\n{process.communicate()}")
        time.sleep(0.1)
    time.sleep(0.2)  # the marker is written before the pause: let the sleep begin
    os.killpg(process.pid, kill_with)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode != 0, stdout
    return marker.read_text(encoding="utf-8"), stderr


def stage_outs(repo: Path, stage: str) -> list[str]:
    outs = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage].get("outs", [])
    return [out if isinstance(out, str) else next(iter(out)) for out in outs]


def test_killed_stages_leave_no_complete_looking_output_and_the_next_repro_finishes(project: Path) -> None:
    for stage, (change, kill_with) in HEAVY_STAGES.items():
        lock_before = (project / "dvc.lock").read_text()
        params_before = (project / "params.yaml").read_text()  # with the changes of the stages killed before
        set_params(project, change)
        published, stderr = repro_killed_before_rename(project, stage, kill_with)
        assert (project / "dvc.lock").read_text() == lock_before, stage  # DVC recorded nothing as complete
        status = json.loads(run(["dvc", "status", "--json", stage], project).stdout)
        assert stage in status, (stage, kill_with, status)
        # DVC deletes a stage's outputs before running it; what must never be there is a new, unrecorded one
        changed_outs = {path: change for entry in status[stage] for path, change in entry.get("changed outs", {}).items()}
        assert "modified" not in changed_outs.values() and "new" not in changed_outs.values(), (stage, changed_outs)
        temporaries = list(Path(project, published).parent.glob(f".{Path(published).name}.tmp-*"))
        if kill_with == signal.SIGTERM:
            assert "stopped by SIGTERM; no partial output was kept" in stderr, stderr
            assert temporaries == [], stage
        else:
            assert temporaries, stage  # SIGKILL cannot be caught: the next run clears it (checked below)
        run(["dvc", "checkout", stage], project)  # the last complete outputs come back from the cache
        if kill_with == signal.SIGTERM:
            run(["git", "checkout", "--", "."], project)  # the git-tracked reports DVC deleted
            (project / "params.yaml").write_text(params_before)
            assert "up to date" in run(["dvc", "status", stage], project).stdout, stage
    killed = [stage for stage, (_, kill_with) in HEAVY_STAGES.items() if kill_with == signal.SIGKILL]
    result = run(["dvc", "repro"], project)
    assert [name for name in HEAVY_STAGES if f"Running stage '{name}'" in result.stdout] == killed
    assert "up to date" in run(["dvc", "status"], project).stdout
    leftovers = [p for out in {o for s in HEAVY_STAGES for o in stage_outs(project, s)}
                 for p in (project / out).parent.glob(f".{Path(out).name}.tmp-*")]
    assert leftovers == []  # what SIGKILL left behind was cleared by the next run
