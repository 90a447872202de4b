"""The same inputs, params and seed give byte-identical outputs: a second pipeline run from scratch, in another
folder, writes exactly the bytes the first did (split, corpus, pairs, negatives, embeddings, reviews, reports,
metrics, plots) and the same dvc.lock, so an unchanged rerun gives an empty `dvc metrics diff` and leaves every
tracked file as it was. What measures the run itself (seconds, throughput, memory) is in logs/, which is no output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import snapshot_outputs
from test_pipeline_e2e import make_template_copy, run

pytestmark = pytest.mark.slow  # runs the pipeline with DVC twice

def test_a_second_run_from_scratch_writes_identical_bytes(pristine_pipeline, tmp_path: Path, tiny_model_path: Path) -> None:
    _, _, first = pristine_pipeline
    repo = make_template_copy(tmp_path / "again", tiny_model_path)
    run(["dvc", "repro"], repo)
    second = snapshot_outputs(repo)
    assert sorted(second) == sorted(first)
    for stage_output in ("dvc.lock", "data/corpus/", "data/split/", "data/pairs/", "data/negatives/", "reports/synthesize.json",
                         "reports/train.json", "metrics/train.json", "metrics/evaluate.json"):
        assert any(path.startswith(stage_output) for path in first), stage_output
    assert [path for path in first if first[path] != second[path]] == []
