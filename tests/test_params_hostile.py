"""Params and settings that pass a type check but mean nothing a run can do end in one message naming the key,
never in a traceback from deep inside torch, numpy or the Hub client (issue 18, items 6 and 10 to 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embedft.config import DataParams, MachineSettings, SplitParams, load_machine, load_params
from embedft.core import PipelineError
from embedft.encoding import load_model
from stages.split import split_labelled


def test_a_zero_test_share_is_refused_before_the_pipeline_runs(tmp_path: Path) -> None:
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(10)))
    queries, corpus_ids = {f"q{i}": f"query {i}" for i in range(10)}, {f"d{i}" for i in range(10)}
    split = SplitParams(train_fraction=0.9, dev_fraction=0.1, test_fraction=0.0)
    with pytest.raises(PipelineError, match=r"params.yaml: split.test_fraction is 0, so none of the labelled queries"):
        split_labelled(DataParams(dir=str(tmp_path)), split, 0, corpus_ids, queries)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_outside_numpys_range_names_the_key(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"base:\n  seed: {seed}\n")
    with pytest.raises(PipelineError, match=r"key 'base.seed'"):
        load_params(path)


@pytest.mark.parametrize("device", ["banana", "cuda:x", "gpu"])
def test_a_device_torch_does_not_know_names_the_setting(tmp_path: Path, monkeypatch, device: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=r"environment variable EMBEDFT_DEVICE: key 'device'.*expected auto, cpu, mps"):
        load_machine({"EMBEDFT_DEVICE": device})
    assert MachineSettings(device=" cuda:1 ").device == "cuda:1"


def test_a_window_longer_than_the_models_positions_names_the_key(tiny_model_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"params.yaml: base.max_seq_length is 1024, but model .* has 512 positions"):
        load_model(str(tiny_model_path), "cpu", 1024)
    with pytest.raises(PipelineError, match=r"train.max_seq_length is 600.*set train.max_seq_length to 512 or less"):
        load_model(str(tiny_model_path), "cpu", 600, length_key="train.max_seq_length")
    assert load_model(str(tiny_model_path), "cpu", 512).max_seq_length == 512


def test_a_missing_local_model_is_not_looked_up_on_the_hub(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()  # a `models/` folder here: `models/finetuned` is a path, not a Hub id
    with pytest.raises(PipelineError, match=r"params.yaml base.model: model path 'models/finetuned' does not exist"):
        load_model("models/finetuned", "cpu")
    with pytest.raises(PipelineError, match=r"^the model folder 'models/round2' does not exist .*run `dvc repro`"):
        load_model("models/round2", "cpu", key=None)


def test_a_hub_id_that_cannot_be_found_says_it_was_looked_up_there(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: the variable alone is too late
    with pytest.raises(PipelineError) as raised:
        load_model("nobody-here/no-such-model", "cpu")
    message = str(raised.value)
    assert message.startswith("params.yaml base.model: could not load model 'nobody-here/no-such-model': there is no folder")
    assert "looked up as a Hugging Face Hub model id" in message and "\n" not in message


def test_a_cross_encoder_with_pickled_weights_is_refused_by_name(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from embedft.encoding import load_cross_encoder, resolve_model_path

    folder = tmp_path / "cross-encoder"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")  # the pickled kind
    (folder / "model.safetensors").unlink()
    with pytest.raises(PipelineError, match=r"mine_negatives.cross_encoder: .* has no safetensors weights; only safetensors"):
        load_cross_encoder(str(folder), "cpu")
