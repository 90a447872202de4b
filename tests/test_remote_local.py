"""The template's default DVC remote (a directory beside the clone) works with no set-up, and the fine-tuned
model is an artifact that `dvc artifacts get` and `dvc get` fetch through it."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_copies import committed_copy
from test_pipeline_e2e import TEMPLATE_ROOT, run
from test_remote_s3 import folder_digest

pytestmark = pytest.mark.slow  # pushes and pulls with DVC


@pytest.fixture(scope="module")
def workspace(pristine_pipeline, tmp_path_factory) -> Path:
    """A folder holding the project's clones (and, once pushed, the default remote)."""
    folder = tmp_path_factory.mktemp("workstation")
    committed_copy(pristine_pipeline[0], folder / "project")
    return folder


def test_template_config_has_a_default_local_remote() -> None:
    remotes = [line.split() for line in run(["dvc", "remote", "list"], TEMPLATE_ROOT).stdout.splitlines()]
    assert ["local", str((TEMPLATE_ROOT.parent / "dvc-storage" / "embedding-finetune").resolve()), "(default)"] in remotes


def test_push_and_pull_between_clones_with_no_set_up(workspace: Path) -> None:
    project = workspace / "project"
    assert " pushed" in run(["dvc", "push"], project).stdout
    storage = workspace / "dvc-storage" / "embedding-finetune"
    assert (storage / "files" / "md5").is_dir()

    teammate = workspace / "teammate"
    run(["git", "clone", "-q", str(project), str(teammate)], workspace)
    run(["dvc", "pull"], teammate)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], teammate).stdout
    assert folder_digest(teammate / "models" / "finetuned") == folder_digest(project / "models" / "finetuned")
    assert "Running stage" not in run(["dvc", "repro"], teammate).stdout


def test_model_artifact_is_fetched_by_version_from_a_clone_without_data(workspace: Path, tmp_path: Path) -> None:
    project = workspace / "project"
    run(["dvc", "push"], project)
    run(["git", "tag", "-a", "embedding-model@v0.1.0", "-m", "first model"], project)

    consumer = workspace / "consumer"  # has the git history and tags, but no DVC data or cache
    run(["git", "clone", "-q", str(project), str(consumer)], workspace)
    assert not (consumer / ".dvc" / "cache").exists()
    run(["dvc", "artifacts", "get", str(consumer), "embedding-model", "--rev", "v0.1.0", "-o", "by-artifact"], tmp_path)
    run(["dvc", "get", str(consumer), "models/finetuned", "-o", "by-path"], tmp_path)
    expected = folder_digest(project / "models" / "finetuned")
    assert folder_digest(tmp_path / "by-artifact") == expected
    assert folder_digest(tmp_path / "by-path") == expected

    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(tmp_path / "by-artifact"), device="cpu").encode(["parse JSON"]).shape == (1, 64)


def test_artifact_without_a_version_tag_names_the_artifact(workspace: Path, tmp_path: Path) -> None:
    untagged = workspace / "untagged"
    run(["git", "clone", "-q", "--no-tags", str(workspace / "project"), str(untagged)], workspace)
    result = run(["dvc", "artifacts", "get", str(untagged), "embedding-model"], tmp_path, check=False)
    assert result.returncode != 0 and "Unable to find artifact 'embedding-model'" in result.stderr
