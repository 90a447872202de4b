"""Private, committed copies of the reproduced template project for the sharing tests (remotes, experiments,
report, export), so that they never change the session's shared `reproduced_pipeline`."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_pipeline_e2e import TEMPLATE_ROOT, run


def _skip_dvc_tmp(folder: str, names: list[str]) -> list[str]:
    """Leave out .dvc/tmp (locks, the experiment queue, DVC's updater state): it belongs to the original."""
    return ["tmp"] if Path(folder).name == ".dvc" else []


def committed_copy(reproduced: Path, destination: Path) -> Path:
    """Copy a reproduced project (with its DVC cache and git history) to ``destination``, give it the template's
    `.dvc/config` (the default local remote), make sure it is reproduced, and commit everything."""
    shutil.copytree(reproduced, destination, ignore=_skip_dvc_tmp, symlinks=True)
    shutil.copy(TEMPLATE_ROOT / ".dvc" / "config", destination / ".dvc" / "config")
    run(["dvc", "repro"], destination)  # a no-op unless an earlier test left a param changed
    run(["git", "add", "-A"], destination)
    run(["git", "commit", "-q", "--allow-empty", "-m", "reproduced template"], destination)
    return destination
