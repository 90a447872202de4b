"""Private, committed copies of the reproduced template project for the sharing tests (remotes, experiments,
report, export), so that they never change the session's `pristine_pipeline`."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import copy_project
from test_pipeline_e2e import TEMPLATE_ROOT, run


def committed_copy(reproduced: Path, destination: Path) -> Path:
    """Copy a reproduced project (with its DVC cache and git history) to ``destination``, give it the template's
    `.dvc/config` (the default local remote), check that it is up to date, and commit everything."""
    copy_project(reproduced, destination)
    shutil.copy(TEMPLATE_ROOT / ".dvc" / "config", destination / ".dvc" / "config")
    output = run(["dvc", "repro"], destination).stdout
    assert "Running stage" not in output, output  # the copy is as reproduced as its original
    run(["git", "add", "-A"], destination)
    run(["git", "commit", "-q", "--allow-empty", "-m", "reproduced template"], destination)
    return destination
