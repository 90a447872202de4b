"""Training helpers (columns, precision, loss) and a tiny end-to-end fine-tune on the CPU."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer import losses

from stages.errors import PipelineError
from stages.models import load_model
from stages.params import BaseParams, TrainParams
from stages.retrieval import encode
from stages.train import CURVES, TrainingCurves, build_loss, choose_precision, fine_tune, prompts_for, training_columns

from conftest import TINY_DOCS, TINY_QUERIES


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    return load_model(str(tiny_model_path), "cpu")


def test_training_columns_numeric_negative_order():
    row = {"source": "title", "negative_10": "n10", "positive": "p", "negative_2": "n2", "anchor": "a", "negative_1": "n1"}
    row.update({f"negative_{i}": f"n{i}" for i in range(3, 10)})
    columns = training_columns([row, {**row, "anchor": "b"}])
    assert list(columns) == ["anchor", "positive", *[f"negative_{i}" for i in range(1, 11)]]
    assert columns["anchor"] == ["a", "b"]
    assert columns["negative_10"] == ["n10", "n10"]
    assert "source" not in columns


def test_training_columns_without_negatives():
    columns = training_columns([{"anchor": "a", "positive": "p", "source": "x"}])
    assert columns == {"anchor": ["a"], "positive": ["p"]}


def test_training_columns_empty_is_an_error():
    with pytest.raises(PipelineError) as caught:
        training_columns([])
    assert "negatives.jsonl" in str(caught.value)
    assert "no training rows" in str(caught.value)


@pytest.mark.parametrize("setting", ["auto", "fp32", "fp16", "bf16"])
def test_choose_precision_cpu_is_fp32(setting):
    assert choose_precision(setting, "cpu") == {"bf16": False, "fp16": False}
    assert choose_precision(setting, "mps") == {"bf16": False, "fp16": False}


def test_choose_precision_cuda(monkeypatch):
    assert choose_precision("fp32", "cuda") == {"bf16": False, "fp16": False}
    assert choose_precision("fp16", "cuda:0") == {"bf16": False, "fp16": True}
    assert choose_precision("bf16", "cuda") == {"bf16": True, "fp16": False}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert choose_precision("auto", "cuda") == {"bf16": True, "fp16": False}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert choose_precision("auto", "cuda") == {"bf16": False, "fp16": True}


def test_build_loss_matryoshka_within_model_dim(tiny_model):
    loss = build_loss(tiny_model, TrainParams(matryoshka_dims=[32, 64]))
    assert isinstance(loss, losses.MatryoshkaLoss)
    assert list(loss.matryoshka_dims) == [64, 32]
    assert isinstance(loss.loss, losses.MultipleNegativesRankingLoss)


def test_build_loss_drops_dims_above_model(tiny_model):
    loss = build_loss(tiny_model, TrainParams(matryoshka_dims=[384, 128, 64, 16]))
    assert isinstance(loss, losses.MatryoshkaLoss)
    assert list(loss.matryoshka_dims) == [64, 16]


def test_build_loss_all_dims_too_big(tiny_model):
    with pytest.raises(PipelineError) as caught:
        build_loss(tiny_model, TrainParams(matryoshka_dims=[384]))
    message = str(caught.value)
    assert "train.matryoshka_dims" in message
    assert "[384]" in message
    assert "64" in message


def test_build_loss_without_matryoshka(tiny_model):
    loss = build_loss(tiny_model, TrainParams(matryoshka_dims=[]))
    assert isinstance(loss, losses.MultipleNegativesRankingLoss)
    assert not isinstance(loss, losses.MatryoshkaLoss)


def test_prompts_for():
    assert prompts_for(["anchor", "positive"], BaseParams()) is None
    base = BaseParams(query_prompt="query: ", document_prompt="")
    assert prompts_for(["anchor", "positive", "negative_1"], base) == {"anchor": "query: ", "positive": "", "negative_1": ""}


def test_fine_tune_tiny(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [
        {"anchor": query, "positive": f"{title}\n{text}", "negative_1": f"unrelated filler passage number {i}", "source": "labelled"}
        for i, (query, (title, text)) in enumerate(zip(TINY_QUERIES, TINY_DOCS))
    ]
    base = BaseParams(model=str(tiny_model_path), device="cpu", seed=0, query_prompt="query: ", document_prompt="passage: ")
    settings = TrainParams(epochs=1, batch_size=4, learning_rate=1e-3, max_seq_length=32, matryoshka_dims=[64, 32], precision="auto")
    before = encode(load_model(str(tiny_model_path), "cpu", 32), TINY_QUERIES[:3], progress=False)

    model, report = fine_tune(rows, base, settings)

    assert report["train_rows"] == 12
    assert report["steps"] > 0
    assert report["steps"] <= 3  # 12 rows, batches of 4, one epoch
    assert report["pairs_seen"] == report["steps"] * 4
    assert report["device"] == "cpu"
    assert math.isfinite(report["train_loss"])
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    assert model.max_seq_length == 32
    after = encode(model, TINY_QUERIES[:3], progress=False)
    assert after.shape == before.shape == (3, 64)
    assert not np.allclose(before, after, atol=1e-4)  # the weights were updated


def test_fine_tune_logs_training_curves_with_dvclive(tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)  # a repo without commits, where dvclive.Live fails
    rows = [{"anchor": query, "positive": f"{title}\n{text}"} for query, (title, text) in zip(TINY_QUERIES, TINY_DOCS)]
    base = BaseParams(model=str(tiny_model_path), device="cpu", seed=0)
    settings = TrainParams(epochs=2, batch_size=4, learning_rate=1e-3, max_seq_length=32, matryoshka_dims=[], logging_steps=2)
    curves = TrainingCurves(tmp_path / "scratch")

    _, report = fine_tune(rows, base, settings, curves)
    published = curves.publish(tmp_path / "plots" / "train")

    assert [p.name for p in published] == ["loss.tsv", "learning_rate.tsv"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["train"]  # no temporary folder left behind
    assert sorted(p.name for p in (tmp_path / "plots" / "train").iterdir()) == ["learning_rate.tsv", "loss.tsv"]
    expected_steps = [1, *range(2, report["steps"] + 1, 2)]  # step 1, then every logging_steps
    for name in CURVES:
        lines = [line.split("\t") for line in (tmp_path / "plots" / "train" / f"{name}.tsv").read_text().splitlines()]
        assert lines[0] == ["step", name]
        assert [int(step) for step, _ in lines[1:]] == expected_steps
        assert all(math.isfinite(float(value)) for _, value in lines[1:])
    assert not (tmp_path / "dvc.yaml").exists() and not (tmp_path / ".dvc").exists()


def test_publish_without_curves_is_an_error(tmp_path):
    with pytest.raises(PipelineError) as caught:
        TrainingCurves(tmp_path / "scratch").publish(tmp_path / "plots" / "train")
    assert "loss.tsv" in str(caught.value)
    assert not (tmp_path / "plots" / "train").exists()
