"""Faults outside the user's files: a full disk while a stage writes its output."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tiny_dataset

from embedft.core.atomic import atomic_path
from embedft.core.errors import PipelineError

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_no_space_left_is_a_clear_error_and_keeps_the_old_output(tmp_path: Path) -> None:
    final = tmp_path / "result.txt"
    final.write_text("old", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"result.txt: could not write the output \(No space left on device\)"):
        with atomic_path(final) as temporary:
            temporary.write_text("partial", encoding="utf-8")
            with open("/dev/full", "w", encoding="utf-8") as device:  # every write to /dev/full fails with ENOSPC
                device.write("x" * 100_000)
                device.flush()
    assert final.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def limit_file_size() -> None:
    """In the child: files may not grow past 512 bytes, so the stage's output write fails like on a full disk."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))


def test_stage_that_cannot_write_fails_cleanly_and_leaves_the_previous_output(tmp_path: Path) -> None:
    shutil.copy(TEMPLATE_ROOT / "params.yaml", tmp_path / "params.yaml")
    write_tiny_dataset(tmp_path / "data" / "sample")
    previous = tmp_path / "data" / "corpus" / "corpus.jsonl"
    previous.parent.mkdir(parents=True)
    previous.write_text('{"_id": "old", "text": "the previous output"}\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "stages.ingest"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(TEMPLATE_ROOT), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
                            preexec_fn=limit_file_size)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: data/corpus: could not write the output (File too large)"), result.stderr
    assert previous.read_text(encoding="utf-8") == '{"_id": "old", "text": "the previous output"}\n'
    assert not list((tmp_path / "data").glob(".*.tmp-*"))
