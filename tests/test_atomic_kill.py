"""A kill inside the rename window of an atomic write: the temporary is complete but not yet in place. The old
output stays (a file is replaced in one step), nothing half-written is at the final path, and the next write
removes the dead run's temporary. The window is too short for a real kill to land in by chance, so the writer's
test hook kills the process there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from embedft.core import atomic_path, write_text_atomic

KILL_BEFORE_RENAME = """
import os, signal, sys
from pathlib import Path
import embedft.core.atomic as atomic

atomic.before_replace = lambda temporary, final: os.kill(os.getpid(), signal.SIGKILL)
final = Path(sys.argv[1])
if sys.argv[2] == "file":
    atomic.write_text_atomic(final, "new output\\n")
else:
    with atomic.atomic_path(final, is_dir=True) as folder:
        (folder / "rows.jsonl").write_text("new rows\\n")
        (folder / "info.json").write_text("{}\\n")
"""


def killed_in_the_rename_window(final: Path, kind: str) -> None:
    result = subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, str(final), kind], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr


def temporaries(final: Path) -> list[Path]:
    return sorted(final.parent.glob(f".{final.name}.tmp-*"))


def test_a_file_keeps_its_old_content(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    final.write_text("old output\n")
    killed_in_the_rename_window(final, "file")
    assert final.read_text() == "old output\n"
    [left] = temporaries(final)
    assert left.read_text() == "new output\n"  # complete, but never took the output's place
    write_text_atomic(final, json.dumps({"rerun": True}))
    assert temporaries(final) == [] and json.loads(final.read_text()) == {"rerun": True}


@pytest.mark.parametrize("existed", [True, False])
def test_a_folder_is_old_or_absent_never_half_written(tmp_path: Path, existed: bool) -> None:
    final = tmp_path / "negatives"
    if existed:
        final.mkdir()
        (final / "rows.jsonl").write_text("old rows\n")
    killed_in_the_rename_window(final, "folder")
    assert (final / "rows.jsonl").read_text() == "old rows\n" if existed else not final.exists()
    [left] = temporaries(final)
    assert sorted(path.name for path in left.iterdir()) == ["info.json", "rows.jsonl"]
    with atomic_path(final, is_dir=True) as folder:
        (folder / "rows.jsonl").write_text("rerun\n")
    assert temporaries(final) == [] and (final / "rows.jsonl").read_text() == "rerun\n"
