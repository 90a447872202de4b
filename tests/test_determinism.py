"""The same inputs, params and seed give byte-identical outputs: a second pipeline run from scratch, in another
folder, writes exactly the bytes the first did (split, corpus, pairs, negatives, embeddings, reviews, metrics).

The one exception is what measures the run itself rather than its result: the train stage's wall time,
throughput and peak memory in metrics/train.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import snapshot_outputs
from test_pipeline_e2e import make_template_copy, run

pytestmark = pytest.mark.slow  # runs the pipeline with DVC twice

RUN_MEASUREMENTS = {"train_seconds", "eval_seconds", "pairs_per_second", "peak_rss_mb", "peak_gpu_mb"}


def without_run_measurements(metrics: bytes) -> dict:
    """A metrics file's content minus the keys that time or size the run (at any depth)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in RUN_MEASUREMENTS}
        return value
    return strip(json.loads(metrics))


def test_a_second_run_from_scratch_writes_identical_bytes(reproduced_pipeline, tmp_path: Path, tiny_model_path: Path) -> None:
    _, _, first = reproduced_pipeline
    repo = make_template_copy(tmp_path / "again", tiny_model_path)
    run(["dvc", "repro"], repo)
    second = snapshot_outputs(repo)
    assert sorted(second) == sorted(first)
    for stage_output in ("data/corpus/", "data/split/", "data/pairs/", "data/negatives/", "metrics/synthesize.json", "metrics/mine.json"):
        assert any(path.startswith(stage_output) for path in first), stage_output
    different = [path for path in first if first[path] != second[path] and path != "metrics/train.json"]
    assert different == []
    assert without_run_measurements(second["metrics/train.json"]) == without_run_measurements(first["metrics/train.json"])
