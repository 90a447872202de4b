"""Training checkpoints: where an interrupted run resumes from, and when its checkpoints are stale.

Checkpoints live outside the DVC output (``.checkpoints/``, git-ignored), written by the trainer every
`train.eval_steps`. A checkpoint is complete once its ``trainer_state.json`` parses: the trainer writes that
file last, after the weights, optimizer, scheduler and RNG states, so a run killed while saving leaves an
incomplete folder that is never resumed from. ``run.json`` holds a fingerprint of the params and input
files; checkpoints from a run with another fingerprint are discarded rather than resumed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from embedft.config import BaseParams, TrainParams

RUN_FILE = "run.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def run_fingerprint(base: BaseParams, settings: TrainParams, inputs: list[Path], dev_documents: Sequence[str] = ()) -> str:
    """SHA-256 of what decides the training run: the `base` and `train` params, the bytes of every input file
    that exists and the ids of the documents the dev evaluation searches (they pick the best checkpoint; a
    candidate pool also follows the base embeddings and the `bm25` params). The machine settings and the trackers
    of `train.report_to` are left out: they change no result."""
    digest = hashlib.sha256()
    params = {"base": base.model_dump(), "train": settings.model_dump(exclude={"report_to"})}
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(json.dumps(sorted(dev_documents)).encode())
    for path in inputs:
        digest.update(str(path).encode())
        if Path(path).is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _is_complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The highest-step ``checkpoint-<step>`` folder whose trainer state was fully written, or None."""
    if not Path(folder).is_dir():
        return None
    steps = sorted(((int(m.group(1)), path) for path in Path(folder).iterdir()
                    if path.is_dir() and (m := _CHECKPOINT.match(path.name))), reverse=True)
    return next((path for _, path in steps if _is_complete(path)), None)


def resume_point(folder: Path, fingerprint: str, resume: bool) -> Path | None:
    """The checkpoint to resume from: the last complete one, if resuming is on and it was written by a run with
    the same fingerprint; None means start afresh. Reads only, so every process can call it."""
    if not resume:
        return None
    try:
        recorded = json.loads((Path(folder) / RUN_FILE).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None
    return last_complete_checkpoint(folder) if recorded == fingerprint else None


def describe_start(folder: Path, fingerprint: str, resume: bool, start: Path | None) -> str:
    """One line for the log: resuming from where, or why the run starts afresh."""
    if start is not None:
        return f"resuming from {start}"
    if not last_complete_checkpoint(folder):
        return "starting afresh"
    if not resume:
        return f"the machine setting resume is false: discarding the checkpoints in {folder} and starting afresh"
    return f"the checkpoints in {folder} come from other params or data: discarding them and starting afresh"


def prepare_folder(folder: Path, fingerprint: str, keep: bool) -> None:
    """Make ``folder`` ready for this run (main process only): empty it unless resuming, and record the fingerprint."""
    folder = Path(folder)
    if not keep and folder.exists():
        for entry in folder.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_FILE).write_text(json.dumps({"fingerprint": fingerprint}) + "\n", encoding="utf-8")
