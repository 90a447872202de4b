"""The train stage's parts: params, data shaping per loss, losses, precision, checkpoints, curves, dev set, card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_DOCS
from pydantic import ValidationError
from sentence_transformers.sentence_transformer import losses
from train_fixtures import DOC_TEXTS, mined_rows, scored_rows, write_jsonl, write_project

from embedft.config import MachineSettings
from embedft.config.params import BaseParams, LoraParams, TrainParams, load_params
from embedft.core.artifacts import SCORED_FILE
from embedft.core.errors import DataFileError, PipelineError
from embedft.core.stage_files import read_negatives, read_scored
from embedft.encoding.models import is_out_of_memory, load_model
from embedft.training.arguments import choose_precision, out_of_memory_message, prompts_for
from embedft.training.checkpoints import last_complete_checkpoint, prepare_folder, resume_point, run_fingerprint
from embedft.training.data import Example, build_training_set, check_settings, drop_groups_below, group_by_negative_count
from embedft.training.losses import OrthogonalRegularizedLoss, build_loss, describe_loss, matryoshka_schedule
from embedft.training.model_card import CardFacts, non_default_params, render_model_card
from embedft.training.monitor import CURVES, DEV_COLUMNS, DEV_CURVES, TrainingCurves, load_dev_set

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    return load_model(str(tiny_model_path), "cpu")


# --- params -----------------------------------------------------------------------------------------------------

def test_params_yaml_train_section_is_valid_and_complete():
    raw = yaml.safe_load((TEMPLATE_ROOT / "params.yaml").read_text())["train"]
    assert set(raw) == set(TrainParams.model_fields)  # every key is written out, with its GPU hint
    assert set(raw["lora"]) == set(LoraParams.model_fields)
    assert load_params(TEMPLATE_ROOT / "params.yaml").train.loss == "MultipleNegativesRankingLoss"


def test_dvc_yaml_train_reads_the_base_bm25_and_train_sections_whole():
    stage = yaml.safe_load((TEMPLATE_ROOT / "dvc.yaml").read_text())["stages"]["train"]
    # resuming is a machine setting, so every train key decides the result; bm25 draws the dev candidate pool
    assert stage["params"] == ["base", "bm25", "train"]
    assert {"stages/train.py", "embedft/training", "data/embeddings/base"} <= set(stage["deps"])


def test_matryoshka_weights_must_match_dims(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  matryoshka_dims: [64, 32]\n  matryoshka_weights: [1.0]\n")
    with pytest.raises(PipelineError, match=r"matryoshka_weights has 1 entries but matryoshka_dims has 2"):
        load_params(path)


def test_unknown_lora_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lora:\n    alfa: 8\n")
    with pytest.raises(PipelineError, match=r"unknown key 'train.lora.alfa'; did you mean 'train.lora.alpha'\?"):
        load_params(path)


def test_unknown_loss_is_rejected(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  loss: InfoNCE\n")
    with pytest.raises(PipelineError, match=r"key 'train.loss'.*MultipleNegativesRankingLoss"):
        load_params(path)


# --- reading and shaping the training data ----------------------------------------------------------------------

def test_mined_rows_keep_negatives_in_numeric_order(tmp_path):
    row = {"anchor": "a", "positive": "p", **{f"negative_{i}": f"n{i}" for i in range(1, 12)}}
    rows = read_negatives(write_jsonl(tmp_path / "negatives.jsonl", [row]))
    assert rows[0].negatives == tuple(f"n{i}" for i in range(1, 12))


@pytest.mark.parametrize("row, message", [
    ({"anchor": "a", "positive": "p", "negative_2": "n"}, "numbered negative_1..negative_1 without gaps"),
    ({"anchor": "a", "positive": "p", "negative_1": ""}, "field 'negative_1' must be a non-empty string"),
    ({"anchor": "a", "positive": "p", "negative_x": "n"}, "unexpected field 'negative_x'"),
    ({"anchor": "a", "negative_1": "n"}, "missing field 'positive'"),
])
def test_bad_mined_row_names_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "negatives.jsonl", [{"anchor": "ok", "positive": "fine"}, row])
    with pytest.raises(DataFileError) as caught:
        read_negatives(path)
    assert str(caught.value).startswith(f"{path}:2: ")
    assert message in str(caught.value)


@pytest.mark.parametrize("change, message", [
    ({"negative_scores": [0.1]}, "2 negatives but 1 negative_scores"),
    ({"negative_scores": [0.1, float("nan")]}, "'negative_scores' must be a list of finite numbers"),
    ({"positive_score": "high"}, "'positive_score' must be a finite number"),
    ({"negatives": "text"}, "'negatives' must be a list of non-empty strings"),
])
def test_bad_scored_row_names_file_and_line(tmp_path, change, message):
    good = scored_rows(1)[0]
    path = tmp_path / SCORED_FILE
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
    with pytest.raises(DataFileError) as caught:
        read_scored(path)
    assert str(caught.value).startswith(f"{path}:2: ") and message in str(caught.value)


def test_groups_by_negative_count_and_merges_small_groups_down():
    examples = [Example("a", f"p{i}", tuple(f"n{i}-{k}" for k in range(count))) for i, count in enumerate([0] * 5 + [1] * 5 + [3] * 2)]
    groups = group_by_negative_count(examples, min_group_size=4)
    assert sorted(groups) == [0, 1]  # the 2 rows with 3 negatives are too few for a batch: they keep their first
    assert len(groups[1]) == 7 and len(groups[0]) == 5
    assert groups[1][0].negatives == ("n10-0",)  # merged rows come first, truncated to one negative
    # Merging cascades; the smallest count cannot merge further down and stays, however small.
    assert {k: len(v) for k, v in group_by_negative_count(examples, min_group_size=8).items()} == {0: 12}
    assert {k: len(v) for k, v in group_by_negative_count(examples, min_group_size=13).items()} == {0: 12}


def test_a_lone_row_too_few_for_in_batch_negatives_is_dropped_and_counted(tmp_path, caplog):
    from transformers import TrainerState

    from embedft.training.run_report import run_report

    # 8 rows with a negative, and one without: nothing smaller to join, and alone it would be a batch of one row
    # whose MultipleNegativesRankingLoss is 0 (its positive is its only candidate) while the step still counts.
    lone = {"anchor": "a query the miner found no negative for", "positive": DOC_TEXTS[0], "source": "labelled"}
    write_jsonl(tmp_path / "negatives.jsonl", [*mined_rows(8, negatives=(1,)), lone])
    caplog.set_level("WARNING", logger="embedft")
    training = build_training_set(TrainParams(batch_size=4), tmp_path, min_group_size=4)
    assert sorted(training.datasets) == ["negatives_1"] and training.negatives_per_example == {"1": 8}
    assert training.dropped_examples == 1 and training.examples == training.pairs == 8
    assert training.pairs_by_source == {"labelled": 4, "title": 4}  # the dropped row is not counted as used
    assert "1 training example(s)" in caplog.text and "with 0 negative(s) left out" in caplog.text
    report = run_report(training, TrainerState(global_step=2, epoch=1.0), TrainParams(batch_size=4), device="cpu",
                        world_size=1, resumed_step=0, training_loss=1.5, stopped_early=False, seconds=1.0,
                        eval_seconds=0.0, dev=None)
    assert report["dropped_examples"] == 1 and report["examples"] == 8

    # Two such rows make a batch with in-batch negatives: kept. A loss without in-batch negatives keeps a lone row.
    write_jsonl(tmp_path / "negatives.jsonl", [*mined_rows(8, negatives=(1,)), lone, {**lone, "positive": DOC_TEXTS[1]}])
    assert build_training_set(TrainParams(batch_size=4), tmp_path, 4).negatives_per_example == {"0": 2, "1": 8}
    write_jsonl(tmp_path / SCORED_FILE, [*scored_rows(8), {**scored_rows(1)[0], "negatives": ["n"], "negative_scores": [0.2]}])
    margins = build_training_set(TrainParams(loss="MarginMSELoss", batch_size=4), tmp_path, 4)
    assert margins.negatives_per_example == {"1": 1, "2": 8} and margins.dropped_examples == 0


def test_drop_groups_below_and_a_single_example_is_an_error(tmp_path):
    groups = {0: [Example("a", "p")], 2: [Example("b", "q", ("n", "m"))] * 4}
    kept, dropped = drop_groups_below(groups, min_rows=2)
    assert list(kept) == [2] and dropped == [Example("a", "p")]
    assert drop_groups_below(groups, min_rows=1) == (groups, [])
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(1))
    with pytest.raises(PipelineError, match=r"negatives.jsonl: only 1 training example, but params.yaml: train.loss "
                                            r"MultipleNegativesRankingLoss needs at least 2 in a batch"):
        build_training_set(TrainParams(), tmp_path, min_group_size=4)


def test_contrastive_losses_consume_every_mined_negative(tmp_path):
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(36, negatives=(0, 1, 2)))
    training = build_training_set(TrainParams(), tmp_path, min_group_size=4)
    assert sorted(training.datasets) == ["negatives_0", "negatives_1", "negatives_2"]
    assert training.datasets["negatives_2"].column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert training.examples == training.pairs == 36 and training.skipped_rows == 0
    assert training.pairs_by_source == {"labelled": 18, "title": 18}
    assert training.negatives_per_example == {"0": 12, "1": 12, "2": 12}
    assert list(training.trainer_dataset()) == ["negatives_0", "negatives_1", "negatives_2"]


@pytest.mark.parametrize("loss", ["GISTEmbedLoss", "TripletLoss"])
def test_one_negative_losses_get_one_row_per_negative(tmp_path, loss):
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(36, negatives=(0, 1, 2)))
    training = build_training_set(TrainParams(loss=loss), tmp_path, min_group_size=4)
    with_negative = training.datasets["negatives_1"]
    assert with_negative.column_names == ["anchor", "positive", "negative_1"]
    assert len(with_negative) == 12 + 2 * 12
    if loss == "TripletLoss":  # pairs without a negative are skipped
        assert sorted(training.datasets) == ["negatives_1"] and training.skipped_rows == 12 and training.pairs == 24
    else:  # GIST also trains on plain pairs
        assert sorted(training.datasets) == ["negatives_0", "negatives_1"] and training.pairs == 36


def test_margin_mse_labels_are_score_margins(tmp_path):
    write_jsonl(tmp_path / SCORED_FILE, scored_rows(8))
    training = build_training_set(TrainParams(loss="MarginMSELoss"), tmp_path, min_group_size=4)
    dataset = training.datasets["negatives_2"]
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2", "label"]
    assert dataset[0]["label"] == pytest.approx([0.5, 0.8])
    assert training.score_source == "cross_encoder" and training.source_file == tmp_path / SCORED_FILE


def test_distillation_labels_are_the_teacher_scores_positive_first(tmp_path):
    one_negative = {**scored_rows(1)[0], "anchor": "a query with one scored negative", "negatives": ["n"], "negative_scores": [0.3]}
    no_negative = {**scored_rows(1)[0], "anchor": "a query without a negative", "negatives": [], "negative_scores": []}
    write_jsonl(tmp_path / SCORED_FILE, [*scored_rows(8), one_negative, no_negative])
    training = build_training_set(TrainParams(loss="DistillKLDivLoss"), tmp_path, min_group_size=4)
    assert training.skipped_rows == 1 and training.pairs == 9  # a softmax over the positive alone teaches nothing
    dataset = training.datasets["negatives_2"]
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2", "label"]
    assert dataset[0]["label"] == pytest.approx([0.9, 0.4, 0.1])
    assert training.datasets["negatives_1"]["label"] == [pytest.approx([0.9, 0.3])]
    # A group too small for a batch joins a smaller one: its scores are cut with its negatives.
    merged = build_training_set(TrainParams(loss="DistillKLDivLoss"), tmp_path, min_group_size=9)
    assert sorted(merged.datasets) == ["negatives_1"] and merged.datasets["negatives_1"]["label"][0] == pytest.approx([0.9, 0.4])
    margins = build_training_set(TrainParams(loss="MarginMSELoss"), tmp_path, min_group_size=9)
    assert margins.datasets["negatives_1"]["label"][0] == pytest.approx([0.5])


def test_cosent_trains_on_scored_pairs(tmp_path):
    write_jsonl(tmp_path / SCORED_FILE, scored_rows(4))
    training = build_training_set(TrainParams(loss="CoSENTLoss"), tmp_path, min_group_size=4)
    dataset = training.datasets["pairs"]
    assert dataset.column_names == ["anchor", "text", "score"] and len(dataset) == 12 and training.pairs == 4
    assert dataset["score"][:3] == pytest.approx([0.9, 0.4, 0.1])


def test_empty_training_set_names_its_source(tmp_path):
    (tmp_path / "negatives.jsonl").write_text("\n")
    with pytest.raises(PipelineError, match=rf"{tmp_path / 'negatives.jsonl'}: file is empty"):
        build_training_set(TrainParams(), tmp_path, min_group_size=4)


def test_triplet_loss_without_negatives_names_the_keys(tmp_path):
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(6, negatives=(0,)))
    with pytest.raises(PipelineError) as caught:
        build_training_set(TrainParams(loss="TripletLoss"), tmp_path, min_group_size=4)
    message = str(caught.value)
    assert str(tmp_path / "negatives.jsonl") in message and "no training example" in message
    assert "train.loss TripletLoss" in message and "mine_negatives.num_negatives" in message


@pytest.mark.parametrize("loss", ["MarginMSELoss", "CoSENTLoss", "DistillKLDivLoss"])
def test_score_losses_without_scores_name_the_key(tmp_path, loss):
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(4))
    (tmp_path / SCORED_FILE).write_text("")
    with pytest.raises(PipelineError) as caught:
        check_settings(TrainParams(loss=loss), tmp_path)
    assert f"train.loss is {loss}" in str(caught.value) and str(tmp_path / SCORED_FILE) in str(caught.value)
    check_settings(TrainParams(), tmp_path)  # losses without scores do not need the file


def test_early_stopping_needs_keep_best(tmp_path):
    with pytest.raises(PipelineError, match="train.early_stopping_patience needs train.keep_best: true"):
        check_settings(TrainParams(keep_best=False), tmp_path)
    check_settings(TrainParams(keep_best=False, early_stopping_patience=0), tmp_path)


# --- losses and trainer settings --------------------------------------------------------------------------------

def test_matryoshka_schedule():
    assert matryoshka_schedule(64, [32, 16], []) == ([64, 32, 16], [1.0, 1.0, 1.0])  # full width always trained
    assert matryoshka_schedule(64, [384, 64, 16], [1, 2, 3]) == ([64, 16], [2.0, 3.0])
    with pytest.raises(PipelineError, match=r"train.matryoshka_dims \[384\] are all above the model's dimension 64"):
        matryoshka_schedule(64, [384], [])


@pytest.mark.parametrize("name", ["MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss", "GISTEmbedLoss",
                                  "CachedGISTEmbedLoss", "TripletLoss", "CoSENTLoss", "MarginMSELoss", "DistillKLDivLoss"])
def test_build_loss_makes_the_named_loss(tiny_model, name):
    loss = build_loss(tiny_model, TrainParams(loss=name, matryoshka_dims=[]), MachineSettings(train_mini_batch_size=8), guide=tiny_model)
    assert type(loss).__name__ == name
    if name.startswith("Cached"):
        assert loss.mini_batch_size == 8
    if name == "TripletLoss":
        assert loss.triplet_margin == TrainParams().triplet_margin
    wrapped = build_loss(tiny_model, TrainParams(loss=name, matryoshka_dims=[32]), MachineSettings(), guide=tiny_model)
    assert isinstance(wrapped, losses.MatryoshkaLoss) and list(wrapped.matryoshka_dims) == [64, 32]


def test_the_default_loss_is_plain_infonce(tiny_model):
    loss = build_loss(tiny_model, TrainParams(), MachineSettings())
    assert isinstance(loss, losses.MatryoshkaLoss) and type(loss.loss) is losses.MultipleNegativesRankingLoss
    assert loss.loss.get_config_dict() == losses.MultipleNegativesRankingLoss(tiny_model).get_config_dict()
    assert describe_loss(loss) == "MatryoshkaLoss(MultipleNegativesRankingLoss, dims 64, weights 1)"


@pytest.mark.parametrize("name", ["MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss"])
def test_contrastive_options_reach_the_loss(tiny_model, name):
    settings = TrainParams(loss=name, hardness_mode="hard_negatives", hardness_strength=5.0, partition_mode="joint",
                           directions=["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"])
    loss = build_loss(tiny_model, settings, MachineSettings()).loss  # inside MatryoshkaLoss
    assert type(loss).__name__ == name
    assert (loss.hardness_mode, loss.hardness_strength, loss.partition_mode) == ("hard_negatives", 5.0, "joint")
    assert loss.directions == ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
    symmetric = TrainParams(loss=name, directions=["query_to_doc", "doc_to_query"], partition_mode="per_direction",
                            hardness_mode="in_batch_negatives", hardness_strength=9.0, matryoshka_dims=[])
    loss = build_loss(tiny_model, symmetric, MachineSettings())
    assert loss.directions == ("query_to_doc", "doc_to_query") and loss.partition_mode == "per_direction"
    assert (loss.hardness_mode, loss.hardness_strength) == ("in_batch_negatives", 9.0)


def test_distillation_scores_the_student_by_cosine_at_its_temperatures(tiny_model):
    from sentence_transformers.util import pairwise_cos_sim

    settings = TrainParams(loss="DistillKLDivLoss", distill_student_temperature=0.1, distill_teacher_temperature=0.02)
    loss = build_loss(tiny_model, settings, MachineSettings()).loss
    assert isinstance(loss, losses.DistillKLDivLoss) and loss.similarity_fct is pairwise_cos_sim
    assert (loss.student_temperature, loss.teacher_temperature) == (0.1, 0.02)


def test_orthogonal_regulariser_adds_its_terms_to_the_loss(tiny_model):
    settings = TrainParams(orthogonal_weight=0.5, matryoshka_dims=[])
    loss = build_loss(tiny_model, settings, MachineSettings())
    assert isinstance(loss, OrthogonalRegularizedLoss) and type(loss.loss) is losses.MultipleNegativesRankingLoss
    assert (loss.regularizer.mean_weight, loss.regularizer.second_moment_weight) == (0.5, 0.5)
    assert describe_loss(loss) == "MultipleNegativesRankingLoss + GlobalOrthogonalRegularizationLoss (weight 0.5)"
    wrapped = build_loss(tiny_model, TrainParams(orthogonal_weight=0.5, matryoshka_dims=[32]), MachineSettings())
    assert describe_loss(wrapped) == ("MatryoshkaLoss(MultipleNegativesRankingLoss + GlobalOrthogonalRegularizationLoss "
                                      "(weight 0.5), dims 64/32, weights 1/1)")
    batch = [tiny_model.tokenize([f"query {i}" for i in range(4)]), tiny_model.tokenize(DOC_TEXTS[:4])]
    tiny_model.eval()  # no dropout: the same texts give the same embeddings in each call
    with torch.no_grad():
        total = loss(batch, torch.empty(0))
        infonce = loss.loss(batch, torch.empty(0))
        terms = loss.regularizer(batch)
    assert set(terms) == {"gor_mean", "gor_second_moment"} and float(terms["gor_mean"]) > 0
    assert float(total) == pytest.approx(float(infonce + terms["gor_mean"] + terms["gor_second_moment"]), rel=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"loss": "TripletLoss", "hardness_mode": "in_batch_negatives", "hardness_strength": 9.0},
     "train.hardness_mode applies only to train.loss MultipleNegativesRankingLoss or CachedMultipleNegativesRankingLoss, "
     "not TripletLoss; leave it at its default (null)"),
    ({"loss": "GISTEmbedLoss", "directions": ["query_to_doc", "doc_to_query"]},
     "train.directions applies only to train.loss MultipleNegativesRankingLoss or CachedMultipleNegativesRankingLoss, not "
     "GISTEmbedLoss; leave it at its default ([\"query_to_doc\"])"),
    ({"loss": "MarginMSELoss", "partition_mode": "per_direction"}, "train.partition_mode applies only to"),
    ({"distill_teacher_temperature": 1.0},
     "train.distill_teacher_temperature applies only to train.loss DistillKLDivLoss, not MultipleNegativesRankingLoss"),
    ({"loss": "DistillKLDivLoss", "triplet_margin": 1.0}, "train.triplet_margin applies only to train.loss TripletLoss"),
    ({"loss": "CachedMultipleNegativesRankingLoss", "orthogonal_weight": 0.1},
     "train.orthogonal_weight applies only to train.loss MultipleNegativesRankingLoss, not CachedMultipleNegativesRankingLoss"),
    ({"hardness_mode": "hard_negatives"}, "train.hardness_mode hard_negatives needs train.hardness_strength above 0"),
    ({"hardness_strength": 5.0}, "train.hardness_strength 5 has no effect while train.hardness_mode is null"),
    ({"directions": ["doc_to_query"]}, "train.directions ['doc_to_query'] must include query_to_doc"),
    ({"directions": ["query_to_doc", "query_to_doc"]}, "lists a direction twice"),
    ({"directions": ["query_to_doc", "doc_to_doc"], "partition_mode": "per_direction"},
     "train.partition_mode per_direction cannot take train.directions doc_to_doc"),
])
def test_loss_options_the_loss_would_ignore_or_cannot_take_are_refused(tmp_path, changes, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": changes}))
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: key 'train': ") and message in str(caught.value)


def test_unknown_loss_option_values_name_the_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  hardness_mode: hardest\n  directions: [query_to_doc, doc_to_passage]\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert "key 'train.hardness_mode'" in str(caught.value) and "key 'train.directions.1'" in str(caught.value)


def test_in_batch_negatives_are_gathered_across_processes(tiny_model):
    for name in ("MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss", "GISTEmbedLoss", "CachedGISTEmbedLoss"):
        settings = TrainParams(loss=name, matryoshka_dims=[])
        assert build_loss(tiny_model, settings, MachineSettings(), guide=tiny_model, world_size=2).gather_across_devices is True
        assert build_loss(tiny_model, settings, MachineSettings(), guide=tiny_model, world_size=1).gather_across_devices is False


def test_gist_without_guide_is_an_error(tiny_model):
    with pytest.raises(PipelineError, match="train.loss GISTEmbedLoss needs a guide model"):
        build_loss(tiny_model, TrainParams(loss="GISTEmbedLoss"), MachineSettings(), guide=None)


def test_choose_precision(monkeypatch):
    off, bf16, fp16 = {"bf16": False, "fp16": False}, {"bf16": True, "fp16": False}, {"bf16": False, "fp16": True}
    assert choose_precision("auto", "cpu") == choose_precision("fp32", "cuda") == choose_precision("fp16", "cpu") == off
    assert choose_precision("bf16", "cpu") == bf16  # an explicit choice is honoured where it works
    assert choose_precision("fp16", "cuda:0") == fp16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert choose_precision("auto", "cuda") == choose_precision("bf16", "cuda") == bf16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert choose_precision("auto", "cuda") == fp16
    with pytest.raises(PipelineError, match="train.precision is bf16, but this GPU does not support bf16"):
        choose_precision("bf16", "cuda")


def test_prompts_for():
    assert prompts_for(["anchor", "positive"], BaseParams()) is None
    base = BaseParams(query_prompt="query: ", document_prompt="passage: ")
    assert prompts_for(["anchor", "positive", "negative_1", "label"], base) == {
        "anchor": "query: ", "positive": "passage: ", "negative_1": "passage: "}
    assert prompts_for(["anchor", "text", "score"], base) == {"anchor": "query: ", "text": "passage: "}


def test_out_of_memory_is_recognised_and_explained():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    message = out_of_memory_message(TrainParams(batch_size=256), MachineSettings(), "cuda:0")
    assert "CachedMultipleNegativesRankingLoss" in message and "machine setting train_mini_batch_size" in message
    assert "train.gradient_accumulation_steps" in message and "cuda:0" in message
    cached = out_of_memory_message(TrainParams(loss="CachedMultipleNegativesRankingLoss"), MachineSettings(train_mini_batch_size=64),
                                   "cuda")
    assert "Lower the machine setting train_mini_batch_size (now 64; try 32)" in cached


# --- checkpoints, curves, dev set ------------------------------------------------------------------------------

def test_resume_only_from_a_complete_checkpoint_of_the_same_run(tmp_path):
    folder = tmp_path / "checkpoints"
    inputs = [write_jsonl(tmp_path / "negatives.jsonl", mined_rows(2))]
    fingerprint = run_fingerprint(BaseParams(), TrainParams(), inputs)
    assert run_fingerprint(BaseParams(), TrainParams(learning_rate=1e-3), inputs) != fingerprint
    prepare_folder(folder, fingerprint, keep=False)
    for step, complete in ((3, True), (6, True), (9, False)):  # 9: killed while saving
        (folder / f"checkpoint-{step}").mkdir()
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(f'{{"global_step": {step}}}' if complete else '{"glob')
    assert last_complete_checkpoint(folder) == folder / "checkpoint-6"
    assert resume_point(folder, fingerprint, resume=True) == folder / "checkpoint-6"
    assert resume_point(folder, fingerprint, resume=False) is None
    write_jsonl(inputs[0], mined_rows(3))  # the data changed: the checkpoints are stale
    assert resume_point(folder, run_fingerprint(BaseParams(), TrainParams(), inputs), resume=True) is None
    prepare_folder(folder, "other", keep=False)
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


def test_curves_resume_and_publish(tmp_path):
    curves = TrainingCurves(tmp_path / "scratch")
    curves.start(0)
    for step in (1, 2, 3, 4):
        curves.record(step, {"loss": 1.0 / step, "learning_rate": 0.1})
    curves.start(2)  # resumed from step 2: later points will be logged again
    curves.record(3, {"loss": 0.5, "learning_rate": 0.2})
    published = curves.publish(tmp_path / "plots" / "train")
    assert sorted(p.name for p in published) == ["dev.tsv", "learning_rate.tsv", "loss.tsv"]
    assert sorted(p.name for p in (tmp_path / "plots" / "train").iterdir()) == ["dev.tsv", "learning_rate.tsv", "loss.tsv"]
    loss = (tmp_path / "plots" / "train" / "loss.tsv").read_text().splitlines()
    assert loss == ["step\tloss", "1\t1.0", "2\t0.5", "3\t0.5"]
    # no dev evaluation ran: header only, so the folder always has the same files
    assert (tmp_path / "plots" / "train" / "dev.tsv").read_text() == "step\tnDCG@10\tMRR@10\tRecall@10\n"
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["train"]


def test_dev_curves_are_published_as_one_table(tmp_path):
    curves = TrainingCurves(tmp_path / "scratch")
    curves.start(0)
    curves.record(1, {"loss": 2.0, "learning_rate": 0.1})
    curves.record(0, {"dev_ndcg_at_10": 0.5, "dev_mrr_at_10": 0.4, "dev_recall_at_10": 0.75})
    curves.record(10, {"dev_ndcg_at_10": 0.625, "dev_mrr_at_10": 0.5})  # a curve without a point leaves its cell empty
    curves.publish(tmp_path / "plots")
    assert (tmp_path / "plots" / "dev.tsv").read_text().splitlines() == [
        "step\tnDCG@10\tMRR@10\tRecall@10", "0\t0.5\t0.4\t0.75", "10\t0.625\t0.5\t"]
    assert set(DEV_COLUMNS) == set(DEV_CURVES) and set(CURVES) == {"loss", "learning_rate", *DEV_CURVES}


def test_publish_without_training_curves_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match="loss.tsv"):
        TrainingCurves(tmp_path / "scratch").publish(tmp_path / "plots" / "train")
    assert not (tmp_path / "plots" / "train").exists()


def test_dev_set_subset_keeps_every_relevant_document(tmp_path, tiny_model_path):
    write_project(tmp_path, tiny_model_path, dev_queries=3)
    whole = load_dev_set(tmp_path / "data" / "split", tmp_path / "data" / "corpus" / "corpus.jsonl", 0, seed=1)
    assert len(whole.documents) == whole.corpus_documents == 12 and len(whole.queries) == 3
    subset = load_dev_set(tmp_path / "data" / "split", tmp_path / "data" / "corpus" / "corpus.jsonl", 5, seed=1)
    assert len(subset.documents) == 5 and {TINY_DOCS[i][0] for i in range(3)} <= set(subset.documents)
    again = load_dev_set(tmp_path / "data" / "split", tmp_path / "data" / "corpus" / "corpus.jsonl", 5, seed=1)
    assert list(again.documents) == list(subset.documents)  # seeded


def test_no_judged_dev_query_means_no_dev_set(tmp_path, tiny_model_path):
    write_project(tmp_path, tiny_model_path, dev_queries=0)
    assert load_dev_set(tmp_path / "data" / "split", tmp_path / "data" / "corpus" / "corpus.jsonl", 0, seed=1) is None


# --- model card ------------------------------------------------------------------------------------------------

def card_facts(**changes) -> CardFacts:
    dev = {"queries": 4, "documents": 12, "corpus_documents": 12, "best_step": 6, "final_step": 9,
           "base": {"ndcg@10": 0.5, "mrr@10": 0.4, "recall@10": 1.0, "map@100": 0.4},
           "best": {"ndcg@10": 0.8, "mrr@10": 0.7, "recall@10": 1.0, "map@100": 0.7},
           "final": {"ndcg@10": 0.75, "mrr@10": 0.7, "recall@10": 1.0, "map@100": 0.7}, "stopped_early": 1, "kept": "best"}
    facts = dict(base_model="BAAI/bge-small-en-v1.5", model_path="models/finetuned", source_file="data/negatives/negatives.jsonl",
                 pairs_by_source={"labelled": 30, "title": 12}, examples=42,
                 loss="MatryoshkaLoss(MultipleNegativesRankingLoss, dims 384/64, weights 1/1)",
                 steps=9, epochs=1.0, effective_batch_size=32,
                 non_default=non_default_params(BaseParams(model="BAAI/bge-small-en-v1.5", query_prompt="Represent: "),
                                                TrainParams(lora=LoraParams(enabled=True))),
                 query_prompt="Represent: ", document_prompt="", matryoshka_dims=[384, 64], lora=True, dev=dev)
    facts.update(changes)
    return CardFacts(**facts)


def test_model_card_states_what_the_issue_asks():
    card = render_model_card(card_facts())
    assert card.startswith("# BAAI/bge-small-en-v1.5, fine-tuned for retrieval")
    assert "LoRA adapters, merged into the weights" in card
    assert "| labelled | 30 |" in card and "| title | 12 |" in card and "42 pairs from `data/negatives/negatives.jsonl`" in card
    assert "- loss: MatryoshkaLoss(MultipleNegativesRankingLoss, dims 384/64, weights 1/1)" in card
    assert "| `base.query_prompt` | `Represent: ` |" in card and "| `train.lora.enabled` | `True` |" in card
    assert "| ndcg@10 | 0.5000 | 0.8000 | 0.7500 |" in card and "best (step 6)" in card and "stopped early" in card
    assert 'SentenceTransformer("models/finetuned")' in card and "model.encode_query" in card and "'Represent: '" in card
    assert "truncate_dim=64" in card
    assert "## Test metrics" in card and "reports/evaluate.json" in card
    assert render_model_card(card_facts()) == card  # no timestamp or timing: same facts, same bytes


def test_model_card_without_prompts_or_dev():
    card = render_model_card(card_facts(query_prompt="", dev=None, lora=False, matryoshka_dims=[]))
    assert "model.encode(" in card and "encode_query" not in card and "truncate_dim" not in card
    assert "No dev split with judged queries" in card and "(all weights)" in card


def test_mean_training_loss_counts_the_steps_before_the_resumed_checkpoint():
    from embedft.training.run_report import mean_training_loss

    # Logged at steps 1, 4, 6 (the checkpoint) and 8: each loss is the mean since the previous log.
    history = [{"loss": 4.0, "step": 1}, {"loss": 3.0, "step": 4}, {"eval_dev_cosine_ndcg@10": 0.5, "step": 4},
               {"loss": 2.0, "step": 6}, {"loss": 1.0, "step": 8}, {"train_loss": 1.5, "step": 10}]
    # Resumed at 6: steps 1..6 from the history (4 + 3*3 + 2*2), steps 7..10 from the trainer's mean of them.
    assert mean_training_loss(history, 6, 10, 1.5) == pytest.approx((4 + 9 + 4 + 1.5 * 4) / 10)
    assert mean_training_loss(history, 0, 10, 1.5) == 1.5  # not resumed: the trainer's mean is the whole run's
    # A checkpoint's history that stops before it (an older run's): the mean over the steps whose loss is known.
    assert mean_training_loss(history[:2], 6, 10, 1.5) == pytest.approx((4 + 9 + 1.5 * 4) / 8)


def test_the_loss_is_logged_at_every_checkpoint():
    from transformers import TrainerControl

    from embedft.training.monitor import LogAtCheckpoints

    callback = LogAtCheckpoints()
    assert callback.on_step_end(None, None, TrainerControl(should_save=True)).should_log
    assert not callback.on_step_end(None, None, TrainerControl()).should_log


def test_saved_files_lose_the_environments_traces(tmp_path):
    from embedft.training.saving import normalise_saved_files

    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"local_files_only": True, "is_local": True, "cls_token": "[CLS]"}))
    versions = {"pytorch": "2.5.1+cu124", "sentence_transformers": "6.2.0", "transformers": "5.23.0"}
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"__version__": versions, "prompts": {"query": "é"}}))
    normalise_saved_files(tmp_path)
    assert (tmp_path / "tokenizer_config.json").read_text() == '{\n  "cls_token": "[CLS]"\n}\n'
    config = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert config == {"__version__": {**versions, "pytorch": "2.5.1"}, "prompts": {"query": "é"}}


def test_aligned_sampler_keeps_processes_on_one_group_per_step():
    from torch.utils.data import BatchSampler, ConcatDataset, SequentialSampler

    from embedft.training.sampler import AlignedProportionalBatchSampler

    groups = [list(range(10)), list(range(6))]
    samplers = [BatchSampler(SequentialSampler(group), 2, drop_last=False) for group in groups]  # 5 and 3 batches
    sampler = AlignedProportionalBatchSampler(ConcatDataset(groups), samplers, torch.Generator(), seed=3, world_size=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2 * 2 + 1 * 2  # an odd batch per group is dropped
    for step in range(0, len(batches), 2):  # batches 2k and 2k+1 go to processes 0 and 1 at the same step
        assert (batches[step][0] >= 10) == (batches[step + 1][0] >= 10)
    assert list(sampler) == batches  # seeded
    single = AlignedProportionalBatchSampler(ConcatDataset(groups), samplers, torch.Generator(), seed=3)
    assert sorted(map(tuple, single)) == sorted([*map(tuple, samplers[0]), *(tuple(i + 10 for i in b) for b in samplers[1])])


def enum_value(setting):
    """A training argument's value, whether transformers stored it as an enum or a string."""
    return getattr(setting, "value", setting)


def test_training_arguments_follow_params(tmp_path):
    from embedft.training.arguments import training_arguments

    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(24, negatives=(0, 1)))
    settings = TrainParams(batch_size=4, gradient_accumulation_steps=3, lr_scheduler="cosine", max_grad_norm=0.5,
                           eval_steps=7, max_steps=20)
    base, machine = BaseParams(seed=5, query_prompt="q: "), MachineSettings(gradient_checkpointing=True)
    args = training_arguments(settings, base, machine, tmp_path / "ck", "cpu", build_training_set(settings, tmp_path, 4), True, 2)
    assert args.report_to in ([], "none", ["none"])  # explicitly no integration
    assert (args.gradient_accumulation_steps, args.max_grad_norm, args.max_steps) == (3, 0.5, 20)
    assert enum_value(args.lr_scheduler_type) == "cosine" and args.seed == args.data_seed == 5
    assert getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing
    assert (args.eval_steps, args.save_steps, args.save_total_limit) == (7, 7, 2)
    assert args.load_best_model_at_end and args.metric_for_best_model.endswith("dev_cosine_ndcg@10")
    assert enum_value(args.batch_sampler) == "no_duplicates" and args.multi_dataset_batch_sampler.keywords == {"world_size": 2}
    assert args.prompts == {"anchor": "q: ", "positive": "", "negative_1": ""}
    triplet = TrainParams(loss="TripletLoss", keep_best=False, early_stopping_patience=0)
    args = training_arguments(triplet, base, machine, tmp_path / "ck", "cpu", build_training_set(triplet, tmp_path, 4), False)
    assert enum_value(args.batch_sampler) == "batch_sampler"  # no in-batch negatives: plain random batches
    assert enum_value(args.eval_strategy) == "no" and not args.load_best_model_at_end


def test_bm25_teacher_scores_get_a_warning(tmp_path):
    from embedft.training.data import score_warning

    write_jsonl(tmp_path / SCORED_FILE, [{**row, "score_source": "bm25"} for row in scored_rows(4)])
    assert "come from BM25" in score_warning(build_training_set(TrainParams(loss="CoSENTLoss"), tmp_path, 4))
    write_jsonl(tmp_path / SCORED_FILE, scored_rows(4))
    assert score_warning(build_training_set(TrainParams(loss="CoSENTLoss"), tmp_path, 4)) is None


# --- trackers (train.report_to) ---------------------------------------------------------------------------------

def test_report_to_reaches_the_trainer_and_dvclive_gets_its_own_folder(tmp_path):
    from transformers.integrations import DVCLiveCallback

    from embedft.training.arguments import TRACKER_FOLDER, tracker_callbacks, training_arguments

    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(12, negatives=(1,)))
    settings = TrainParams(batch_size=4, report_to=["tensorboard", "dvclive"])
    args = training_arguments(settings, BaseParams(), MachineSettings(), tmp_path / "ck", "cpu",
                              build_training_set(settings, tmp_path, 4), True)
    assert args.report_to == ["tensorboard"]  # dvclive's callback is the template's own, below
    (callback,) = tracker_callbacks(settings, tmp_path / "ck")
    assert isinstance(callback, DVCLiveCallback) and Path(callback.live.dir) == tmp_path / "ck" / TRACKER_FOLDER
    assert callback.live._dvcyaml is None  # dvc.yaml is never edited by the tracker
    assert tracker_callbacks(TrainParams(), tmp_path / "ck") == []


def test_report_to_is_validated_with_the_key_named():
    from embedft.training.arguments import check_trackers

    assert TrainParams(report_to="mlflow").report_to == ["mlflow"]  # one name as a string
    for bad, message in ((["none", "wandb"], "lists 'none' with trackers"), ("all", "name the ones you want")):
        with pytest.raises(ValidationError, match=message):
            TrainParams(report_to=bad)
    with pytest.raises(PipelineError, match="train.report_to: unknown tracker 'wandbb'"):
        check_trackers(TrainParams(report_to=["wandbb"]))
    check_trackers(TrainParams(report_to=["dvclive"]))  # dvclive is one of the template's dependencies


def test_a_tracker_that_is_not_installed_fails_before_training():
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    from embedft.training.arguments import check_trackers

    missing = sorted(set(INTEGRATION_TO_CALLBACK) - set(get_available_reporting_integrations()))
    assert missing, "every tracker transformers knows is installed here"
    with pytest.raises(PipelineError, match=f"train.report_to names {missing[0]}, whose package is not installed"):
        check_trackers(TrainParams(report_to=[missing[0]]))


def test_trackers_change_neither_the_card_nor_the_checkpoint_fingerprint(tmp_path):
    watched = TrainParams(report_to=["dvclive"])
    assert non_default_params(BaseParams(), watched) == {}
    assert run_fingerprint(BaseParams(), watched, []) == run_fingerprint(BaseParams(), TrainParams(), [])
