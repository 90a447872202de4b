"""ONNX export of the tiny model: embeddings match PyTorch's through onnxruntime alone and through the path
sentence-transformers' ONNX backend takes; the optional `export@onnx` stage is off by default and runs alone
when enabled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import yaml
from conftest import TINY_DOCS
from project_copies import committed_copy
from sentence_transformers import SentenceTransformer
from test_pipeline_e2e import run, set_params

from embedft.config.params import ExportParams, load_params
from embedft.core.errors import PipelineError
from embedft.encoding.onnx_encoder import ONNX_FILE, OnnxSentenceEncoder
from embedft.encoding.onnx_graph import copy_model_files, export_onnx

TEXTS = ["x", "parse JSON text", *(f"{name}: {text}" for name, text in TINY_DOCS), "a long input " * 80]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def prompted_model(tiny_model_path: Path, tmp_path_factory) -> Path:
    """The tiny model saved with query and document prompts, as the train stage saves a prompted model."""
    folder = tmp_path_factory.mktemp("prompted") / "model"
    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    model.prompts = {"query": "query: ", "document": "passage: "}
    model.save(str(folder))
    return folder


@pytest.fixture(scope="module")
def exported(prompted_model: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("onnx") / "model-onnx"
    copy_model_files(prompted_model, folder)
    export_onnx(SentenceTransformer(str(prompted_model), device="cpu"), folder, opset=17)
    return folder


def test_folder_has_the_onnx_backend_layout_without_pytorch_weights(exported: Path, prompted_model: Path) -> None:
    from sentence_transformers.backend.utils import backend_should_export

    assert (exported / ONNX_FILE).is_file()
    assert not list(exported.glob("*.safetensors")) and (prompted_model / "model.safetensors").exists()
    for name in ("modules.json", "config.json", "tokenizer.json", "config_sentence_transformers.json"):
        assert (exported / name).read_bytes() == (prompted_model / name).read_bytes()
    # sentence-transformers' own check: the folder holds an ONNX model to load, so it would not re-export
    export, kwargs = backend_should_export(exported, True, {}, "model.onnx", "*.onnx", "ONNX")
    assert export is False and kwargs == {"subfolder": "onnx", "file_name": "model.onnx"}
    session = onnxruntime.InferenceSession(str(exported / ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert outputs == {"last_hidden_state": ["batch", "sequence", 64], "sentence_embedding": ["batch", 64]}


@pytest.mark.parametrize("prompt_name", [None, "query", "document"])
def test_onnxruntime_embeddings_match_pytorch(exported: Path, prompted_model: Path, prompt_name: str | None) -> None:
    model = SentenceTransformer(str(prompted_model), device="cpu")
    encoder = OnnxSentenceEncoder(exported)
    for batch_size in (1, 3, 32):
        expected = model.encode(TEXTS, batch_size=batch_size, prompt_name=prompt_name, show_progress_bar=False)
        actual = encoder.encode(TEXTS, batch_size=batch_size, prompt_name=prompt_name)
        assert actual.shape == expected.shape == (len(TEXTS), 64)
        assert np.abs(actual - expected).max() < TOLERANCE
    assert np.abs(encoder.encode(TEXTS, prompt_name="query") - encoder.encode(TEXTS)).max() > 0.01  # the prompt counts


def test_truncate_dim_matches_sentence_transformers(exported: Path, prompted_model: Path) -> None:
    model = SentenceTransformer(str(prompted_model), device="cpu", truncate_dim=32)
    actual = OnnxSentenceEncoder(exported).encode(TEXTS, truncate_dim=32)
    assert actual.shape == (len(TEXTS), 32)
    assert np.abs(actual - model.encode(TEXTS, show_progress_bar=False)).max() < TOLERANCE
    assert OnnxSentenceEncoder(exported).encode([]).shape == (0, 64)


def test_token_embeddings_feed_the_models_own_pooling(exported: Path, prompted_model: Path) -> None:
    """What `SentenceTransformer(folder, backend="onnx")` computes: the graph's last_hidden_state, then the
    model's own Pooling and Normalize modules in PyTorch."""
    model = SentenceTransformer(str(prompted_model), device="cpu")
    session = onnxruntime.InferenceSession(str(exported / ONNX_FILE), providers=["CPUExecutionProvider"])
    encoded = model.tokenizer(TEXTS, padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="np")
    feed = {k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    tokens = session.run(["last_hidden_state"], feed)[0]
    features = {"token_embeddings": torch.from_numpy(tokens), "attention_mask": torch.from_numpy(encoded["attention_mask"])}
    with torch.no_grad():
        for module in list(model)[1:]:
            features = module(features)
    expected = model.encode(TEXTS, batch_size=len(TEXTS), show_progress_bar=False)
    assert np.abs(features["sentence_embedding"].numpy() - expected).max() < TOLERANCE


def test_encoder_errors_are_clear(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        OnnxSentenceEncoder(tmp_path)
    with pytest.raises(ValueError, match=r"prompt_name 'passage' is not one of the model's prompts \['document', 'query'\]"):
        OnnxSentenceEncoder(exported).encode(["x"], prompt_name="passage")


def test_export_beyond_tolerance_fails_and_leaves_nothing(prompted_model: Path, tmp_path: Path, monkeypatch) -> None:
    import embedft.export.onnx_export

    monkeypatch.setattr(embedft.export.onnx_export, "check_embeddings",
                        lambda *_: {"max_abs_diff": 0.02, "min_cosine": 0.9991, "texts": 4, "dimension": 64})
    destination = tmp_path / "models" / "finetuned-onnx"
    with pytest.raises(PipelineError) as error:
        embedft.export.onnx_export.export_model(prompted_model, destination, ["a", "b"], ExportParams(tolerance=1e-4))
    assert str(error.value) == ("params.yaml: export.tolerance: the ONNX embeddings differ from PyTorch's by up to 0.02 "
                                "(cosine down to 0.999100), more than the tolerance 0.0001; no export written")
    assert not destination.exists() and list(destination.parent.iterdir()) == []


def test_unknown_export_format_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"export": {"formats": ["onnx", "tflite"]}}))
    with pytest.raises(PipelineError, match=r"params.yaml: key 'export.formats.1': Input should be 'onnx' \(got 'tflite'\)"):
        load_params(path)
    path.write_text(yaml.safe_dump({"export": {"formats": ["onnx", "onnx"]}}))
    with pytest.raises(PipelineError, match="formats lists a format twice"):
        load_params(path)


@pytest.mark.slow
def test_export_stage_is_off_by_default_and_runs_alone_when_enabled(pristine_pipeline, tmp_path: Path) -> None:
    project = committed_copy(pristine_pipeline[0], tmp_path / "project")
    assert "export" not in run(["dvc", "stage", "list"], project).stdout
    set_params(project, {"export": {"formats": ["onnx"]}})
    first = run(["dvc", "repro"], project).stdout
    assert [line for line in first.splitlines() if line.startswith("Running stage")] == ["Running stage 'export@onnx':"]
    report = json.loads((project / "metrics" / "export_onnx.json").read_text())
    assert report["max_abs_diff"] <= load_params(project / "params.yaml").export.tolerance
    assert report["min_cosine"] > 0.9999 and report["texts"] == 24 and report["dimension"] == 64
    folder = project / "models" / "finetuned-onnx"
    expected = SentenceTransformer(str(project / "models" / "finetuned"), device="cpu").encode(TEXTS, show_progress_bar=False)
    assert np.abs(OnnxSentenceEncoder(folder).encode(TEXTS) - expected).max() < TOLERANCE
    assert "Running stage" not in run(["dvc", "repro"], project).stdout
    shutil.rmtree(folder)
    assert "models/finetuned-onnx" in run(["dvc", "status"], project).stdout  # a tracked output of its own
