"""Publishing to the Hub, end to end against a Hub look-alike on 127.0.0.1 (embedft/testing/hub_server.py): the
files that arrive are the cached model's bytes plus the card with the test metrics (and the ONNX graph), the
weights by Git LFS; the token comes from HF_TOKEN only and is never printed; regressions and suspected leaks are
refused unless params allow them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_model_card import EVALUATION, TRUNCATION

from embedft.core import PipelineError
from embedft.testing.hub_server import HubServer
from embedft.training.model_card import split_front_matter
from stages import model_card

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_token_3f9a1c7e5b"
REPO = "your-org/your-model"


@pytest.fixture(scope="module")
def saved_model(tiny_model_path, tmp_path_factory) -> Path:
    """The tiny model saved as the `train` stage saves it (safetensors weights, normalised files, the Hub card)."""
    from sentence_transformers import SentenceTransformer
    from test_train import card_facts

    from embedft.training import save_model

    folder = tmp_path_factory.mktemp("saved") / "finetuned"
    save_model(SentenceTransformer(str(tiny_model_path), device="cpu"), folder,
               card_facts(base_model="sentence-transformers/all-MiniLM-L6-v2"))
    return folder


def write_project(root: Path, model: Path, publish: dict | None = None, evaluation: dict | None = None,
                  onnx: bool = True) -> Path:
    """A project after `dvc repro`: the model, the ONNX export, the reports, and params naming the repository."""
    import shutil

    shutil.copytree(model, root / "models" / "finetuned")
    if onnx:
        graph = root / "models" / "finetuned-onnx" / "onnx" / "model.onnx"
        graph.parent.mkdir(parents=True)
        graph.write_bytes(bytes(range(256)) * 64)  # the uploader moves bytes; it never reads the graph
    (root / "reports").mkdir()
    (root / "reports" / "evaluate.json").write_text(json.dumps(evaluation or EVALUATION))
    (root / "reports" / "truncate.json").write_text(json.dumps(TRUNCATION))
    params = {"export": {"formats": ["onnx"] if onnx else []}, "publish": {"repo_id": REPO, **(publish or {})}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with contextlib.chdir(root):  # the card with the test metrics, as `dvc repro` writes it
        model_card.main()
    return root


def publish(project: Path, server: HubServer | None, token: str | None = TOKEN, *args: str) -> subprocess.CompletedProcess:
    """`python -m stages.publish` as a user runs it, against ``server`` (HF_ENDPOINT)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(PYTHONPATH=str(TEMPLATE_ROOT), HF_HUB_DISABLE_XET="1", HF_HOME=str(project / ".hf"))
    if server is not None:
        env["HF_ENDPOINT"] = server.url
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "stages.publish", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def hub():
    server = HubServer(TOKEN)
    yield server
    server.close()


@pytest.mark.slow
def test_the_model_its_card_and_the_onnx_graph_arrive(saved_model, tmp_path, hub):
    project = write_project(tmp_path, saved_model)
    result = publish(project, hub)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"to {REPO}" in result.stdout and "verdict: ship" in result.stdout
    arrived = hub.repos[REPO].files
    local = {path.relative_to(saved_model).as_posix(): path.read_bytes() for path in saved_model.rglob("*") if path.is_file()}
    expected = {path: data for path, data in local.items() if path != "README.md"}
    expected["onnx/model.onnx"] = (project / "models" / "finetuned-onnx" / "onnx" / "model.onnx").read_bytes()
    assert {path: data for path, data in arrived.items() if path != "README.md"} == expected  # byte for byte
    assert {"model.safetensors", "onnx/model.onnx"} <= hub.repos[REPO].lfs_paths  # the weights went by Git LFS
    assert "tokenizer_config.json" not in hub.repos[REPO].lfs_paths and hub.repos[REPO].private
    # The card is the cached card with the test metrics: a model-index the Hub reads, the saved body kept.
    card = arrived["README.md"].decode()
    assert arrived["README.md"] == (project / "reports" / "model_card.md").read_bytes()  # the model_card stage's output
    front, body = split_front_matter(card)
    assert front["library_name"] == "sentence-transformers" and front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert front["license"] == "apache-2.0"
    metrics = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert metrics["ndcg_at_10"] == EVALUATION["finetuned"]["ndcg@10"]
    saved_front, saved_body = split_front_matter(local["README.md"].decode())
    assert body.partition("## Test metrics")[0] == saved_body.partition("## Test metrics")[0]
    assert "Verdict: **ship**" in body
    # One commit; the token went in the Authorization header of every API call and nowhere else.
    assert len(hub.repos[REPO].commits) == 1
    assert hub.authorization and set(hub.authorization) == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.stdout + result.stderr and TOKEN not in card
    assert TOKEN not in (project / "params.yaml").read_text()

    # Publishing again (the repository exists now) makes a second commit with the same files.
    again = publish(project, hub)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(hub.repos[REPO].commits) == 2 and hub.repos[REPO].files == arrived


@pytest.mark.slow
def test_a_refused_token_is_named_never_shown(saved_model, tmp_path, hub):
    wrong = "hf_wrong_token_8d2e4a"
    result = publish(write_project(tmp_path, saved_model), hub, token=wrong)
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr and "refused the token in HF_TOKEN" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert REPO not in hub.repos


@pytest.mark.slow
def test_a_dry_run_uploads_nothing_and_needs_no_token(saved_model, tmp_path, hub):
    result = publish(write_project(tmp_path, saved_model), hub, None, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "  model.safetensors" in result.stdout and "  onnx/model.onnx" in result.stdout and "model-index:" in result.stdout
    assert hub.requests == []


# In-process: each of these stops before anything touches the network.

def run_in(project: Path, monkeypatch, token: str | None = TOKEN) -> None:
    import stages.publish

    monkeypatch.chdir(project)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    stages.publish.main([])


def test_a_missing_token_is_one_message_naming_hf_token(saved_model, tmp_path, monkeypatch):
    with pytest.raises(PipelineError, match="in the environment variable HF_TOKEN"):
        run_in(write_project(tmp_path, saved_model), monkeypatch, token=None)


def test_publishing_is_off_without_a_repository(saved_model, tmp_path, monkeypatch):
    project = write_project(tmp_path, saved_model, publish={"repo_id": ""})
    with pytest.raises(PipelineError, match="publish.repo_id is empty, so publishing is off"):
        run_in(project, monkeypatch)


REGRESSION = {**EVALUATION, "verdict": "regression", "comparisons": {"finetuned_vs_base": {
    "difference": -0.03, "ci_low": -0.05, "ci_high": -0.01, "p_value": 0.002, "wins": 10, "ties": 300, "losses": 186}}}


def test_a_regression_is_refused(saved_model, tmp_path, monkeypatch):
    with pytest.raises(PipelineError, match=r"verdict is regression \(fine-tuned minus base -0.0300, 95% CI -0.0500 .. -0.0100\)"
                                            r".*publish.allow_regression: true"):
        run_in(write_project(tmp_path, saved_model, evaluation=REGRESSION), monkeypatch)


def test_a_suspected_leak_is_refused(saved_model, tmp_path, monkeypatch):
    with pytest.raises(PipelineError, match="suspects a train/test leak.*publish.allow_suspected_leak: true"):
        run_in(write_project(tmp_path, saved_model, evaluation={**EVALUATION, "suspected_leak": 1}), monkeypatch)


@pytest.mark.slow
def test_an_allowed_regression_is_published_with_its_verdict(saved_model, tmp_path, hub):
    project = write_project(tmp_path, saved_model, publish={"allow_regression": True}, evaluation=REGRESSION, onnx=False)
    result = publish(project, hub)
    assert result.returncode == 0, result.stderr[-3000:]
    files = hub.repos[REPO].files
    assert "Verdict: **regression**" in files["README.md"].decode() and not any(path.startswith("onnx/") for path in files)


def test_an_onnx_export_named_in_params_must_exist(saved_model, tmp_path, monkeypatch):
    project = write_project(tmp_path, saved_model, onnx=False)
    (project / "params.yaml").write_text(yaml.safe_dump({"export": {"formats": ["onnx"]}, "publish": {"repo_id": REPO}}))
    with pytest.raises(PipelineError, match="export.formats has onnx but there is no export"):
        run_in(project, monkeypatch)


def test_a_card_written_for_another_repository_is_refused(saved_model, tmp_path):
    project = write_project(tmp_path, saved_model)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["publish"]["repo_id"] = "your-org/another-model"  # changed after the card was written
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = publish(project, None, None, "--dry-run")
    assert result.returncode != 0
    assert "reports/model_card.md was written for 'your-org/your-model', not 'your-org/another-model'" in result.stderr
    assert "dvc repro model_card" in result.stderr
