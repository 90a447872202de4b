"""Round 2 in dvc.yaml: off by default; `rounds.extra: [2]` adds `mine_negatives_round@2`, `train_round@2`,
`embed_finetuned_round@2` and `evaluate_round@2`, which mine with round 1's fine-tuned model (and the corpus
embeddings `embed_finetuned` stored, not waiting for evaluation), train again and compare, leaving round 1 alone.

Each test works on a private copy of the session's pristine reproduced template (git history and DVC cache included),
so the shared fixture stays as it was.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import copy_project
from test_pipeline_e2e import METRIC_KEYS, run, set_params

pytestmark = pytest.mark.slow  # runs DVC and trains round 2

ROUND_STAGES = ["mine_negatives_round@2", "train_round@2", "embed_finetuned_round@2", "tune_hybrid_round@2", "evaluate_round@2"]


def stages_ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture
def round_repo(pristine_pipeline, tmp_path: Path) -> Path:
    copy = copy_project(pristine_pipeline[0], tmp_path / "project")
    assert stages_ran(run(["dvc", "repro"], copy).stdout) == []  # round 1 is complete and up to date
    return copy


def test_round_two_is_off_by_default(round_repo: Path) -> None:
    assert yaml.safe_load((round_repo / "params.yaml").read_text())["rounds"]["extra"] == []
    listed = run(["dvc", "stage", "list"], round_repo).stdout
    assert "mine_negatives " in listed and "@2" not in listed


def test_round_two_mines_with_round_one_model_and_evaluates_against_it(round_repo: Path) -> None:
    set_params(round_repo, {"rounds": {"extra": [2]}})
    listed = run(["dvc", "stage", "list"], round_repo).stdout
    assert all(stage in listed for stage in ROUND_STAGES)
    round_one = ("metrics/mine.json", "reports/mine.json", "data/negatives/negatives.jsonl")
    before = {path: (round_repo / path).read_bytes() for path in round_one}
    assert stages_ran(run(["dvc", "repro", "mine_negatives_round@2"], round_repo).stdout) == ["mine_negatives_round@2"]
    rows = [json.loads(line) for line in (round_repo / "data/round2/negatives/negatives.jsonl").read_text().splitlines()]
    assert rows and all("negative_1" in row for row in rows)
    assert json.loads((round_repo / "reports/round2/mine.json").read_text())["pairs"] == len(rows)
    assert "dense model `models/finetuned`" in (round_repo / "reviews/round2/mine_negatives.md").read_text()
    assert {path: (round_repo / path).read_bytes() for path in before} == before  # round 1 untouched

    # Evaluate round 2 with a stand-in for its model (round 1's, copied): every difference to round 1 is zero.
    shutil.copytree(round_repo / "models/finetuned", round_repo / "models/round2")
    run(["python", "-m", "stages.embed_finetuned", "--round", "2"], round_repo)
    run(["python", "-m", "stages.tune_hybrid", "--round", "2"], round_repo)
    run(["python", "-m", "stages.evaluate", "--round", "2"], round_repo)
    report = json.loads((round_repo / "reports/round2/evaluate.json").read_text())
    assert report["round"] == 2
    assert set(report["round1"]) == set(report["finetuned"]) == METRIC_KEYS
    assert report["delta_finetuned_vs_round1"] == {key: 0.0 for key in METRIC_KEYS}
    assert set(report["comparisons"]) == {"finetuned_vs_base", "finetuned_vs_bm25", "hybrid_vs_base", "hybrid_vs_finetuned",
                                         "hybrid_vs_hybrid_rrf", "hybrid_rrf_vs_base", "finetuned_vs_round1"}
    assert report["comparisons"]["finetuned_vs_round1"]["difference"] == 0.0
    assert (round_repo / "data/embeddings/round2/vectors.npy").exists()
    assert (round_repo / "plots/round2/recall_at_k.csv").read_text().startswith("k,base,fine-tuned,BM25,hybrid,hybrid RRF,round1")
    assert json.loads((round_repo / "reports/evaluate.json").read_text()).get("round") is None  # round 1's report untouched


def test_enabling_round_two_runs_only_its_stages(round_repo: Path) -> None:
    set_params(round_repo, {"rounds": {"extra": [2]}})
    assert stages_ran(run(["dvc", "repro"], round_repo).stdout) == ROUND_STAGES
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(round_repo / "models/round2"), device="cpu").encode(["hello"]).shape == (1, 64)
    assert json.loads((round_repo / "metrics/round2/train.json").read_text())["steps"] > 0
    summary = json.loads((round_repo / "metrics/round2/evaluate.json").read_text())
    assert set(summary["finetuned_vs_round1"]) == {"difference", "ci_low", "ci_high", "p_value"} and "round1" in summary
    report = json.loads((round_repo / "reports/round2/evaluate.json").read_text())
    assert {"finetuned_vs_base", "finetuned_vs_round1"} <= set(report["comparisons"])
    assert stages_ran(run(["dvc", "repro"], round_repo).stdout) == []
    set_params(round_repo, {"rounds": {"extra": []}})  # switching round 2 off again changes nothing of round 1
    assert stages_ran(run(["dvc", "repro"], round_repo).stdout) == []
