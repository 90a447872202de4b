"""load_params: defaults, unknown keys with suggestions, type errors, cross-field checks, YAML and file errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from embedft.config.params import BaseParams, MineNegativesParams, Params, SplitParams, TrainParams, load_params
from embedft.core.errors import PipelineError


def write_params(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_empty_file_gives_all_defaults(tmp_path):
    params = load_params(write_params(tmp_path, ""))
    assert params == Params()
    assert params.base.seed == 42
    assert params.base.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert params.split.train_fraction == pytest.approx(0.6)
    assert params.mine_negatives.range_min == 10 and params.mine_negatives.range_max == 50
    assert params.train.matryoshka_dims == [384, 256, 128, 64]
    assert params.evaluate.depth == 100
    assert params.evaluate.headline == "ndcg@10"


def test_missing_sections_and_keys_take_defaults(tmp_path):
    path = write_params(
        tmp_path,
        """
        base:
          seed: 7
        train:
          batch_size: 16
        """,
    )
    params = load_params(path)
    assert params.base.seed == 7
    assert params.base.max_seq_length == BaseParams().max_seq_length  # key missing inside a present section
    assert params.train.batch_size == 16
    assert params.train.learning_rate == TrainParams().learning_rate
    assert params.split == SplitParams()
    assert params.mine_negatives == MineNegativesParams()


def test_full_repo_style_file_is_read(tmp_path):
    path = write_params(
        tmp_path,
        """
        base:
          model: ./my-model
        data:
          dir: data/mine
          qrels: qrels
        split: {train_fraction: 0.8, dev_fraction: 0.0, test_fraction: 0.2}
        mine_negatives: {range_min: 0, range_max: 5, num_negatives: 2, sampling: random}
        train:
          learning_rate: 5.0e-5
          matryoshka_dims: [64, 32]
          precision: fp32
        truncate_eval:
          dims: [64]
        """,
    )
    params = load_params(path)
    assert params.base.model == "./my-model"
    assert params.data.qrels == "qrels"
    assert params.split.test_fraction == pytest.approx(0.2)
    assert params.mine_negatives.sampling == "random"
    assert params.train.learning_rate == pytest.approx(5e-5)
    assert params.train.matryoshka_dims == [64, 32]
    assert params.truncate_eval.dims == [64]


def test_unknown_key_names_dotted_path_and_suggests_fix(tmp_path):
    path = write_params(tmp_path, "train:\n  learnin_rate: 0.001\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert str(path) in message
    assert "unknown key 'train.learnin_rate'" in message
    assert "did you mean 'train.learning_rate'?" in message


def test_unknown_section_suggests_section(tmp_path):
    path = write_params(tmp_path, "trian:\n  epochs: 2\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "unknown key 'trian'" in message
    assert "did you mean 'train'?" in message


def test_unknown_key_without_near_match_has_no_suggestion(tmp_path):
    path = write_params(tmp_path, "evaluate:\n  zzzzqqqq: 1\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "unknown key 'evaluate.zzzzqqqq'" in message
    assert "did you mean" not in message


def test_every_problem_is_reported(tmp_path):
    path = write_params(tmp_path, "base:\n  sed: 1\ntrain:\n  batch_size: many\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "unknown key 'base.sed'" in message and "did you mean 'base.seed'?" in message
    assert "key 'train.batch_size'" in message
    assert len(message.splitlines()) == 2


def test_wrong_type_names_key_and_value(tmp_path):
    path = write_params(tmp_path, "train:\n  batch_size: lots\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert str(path) in message
    assert "key 'train.batch_size'" in message
    assert "'lots'" in message


def test_out_of_range_value_names_key(tmp_path):
    path = write_params(tmp_path, "train:\n  batch_size: 1\n")
    with pytest.raises(PipelineError, match=r"key 'train\.batch_size'"):
        load_params(path)


def test_literal_choice_names_key(tmp_path):
    path = write_params(tmp_path, "mine_negatives:\n  sampling: best\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert "key 'mine_negatives.sampling'" in str(caught.value)
    assert "'best'" in str(caught.value)


def test_split_fractions_must_sum_to_one(tmp_path):
    path = write_params(tmp_path, "split:\n  train_fraction: 0.7\n  dev_fraction: 0.2\n  test_fraction: 0.3\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "key 'split'" in message
    assert "must be 1" in message
    assert "1.2" in message


def test_split_fractions_summing_to_one_are_accepted(tmp_path):
    params = load_params(write_params(tmp_path, "split: {train_fraction: 0.7, dev_fraction: 0.2, test_fraction: 0.1}\n"))
    assert params.split.dev_fraction == pytest.approx(0.2)


@pytest.mark.parametrize("range_min, range_max", [(10, 10), (20, 5)])
def test_mine_negatives_window_must_be_ordered(tmp_path, range_min, range_max):
    path = write_params(tmp_path, f"mine_negatives:\n  range_min: {range_min}\n  range_max: {range_max}\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "key 'mine_negatives'" in message
    assert f"range_max ({range_max}) must be greater than range_min ({range_min})" in message


def test_non_positive_matryoshka_dims_rejected(tmp_path):
    path = write_params(tmp_path, "train:\n  matryoshka_dims: [64, 0]\n")
    with pytest.raises(PipelineError, match="matryoshka_dims must be positive"):
        load_params(path)


def test_empty_truncate_dims_rejected(tmp_path):
    path = write_params(tmp_path, "truncate_eval:\n  dims: []\n")
    with pytest.raises(PipelineError, match=r"key 'truncate_eval'.*non-empty"):
        load_params(path)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write_params(tmp_path, "base:\n  seed: 1\ntrain:\n  epochs: [1, 2\n  batch_size: 4\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "not valid YAML" in message
    # The unclosed flow sequence is detected at line 5 (1-based).
    assert f"{path}:5:" in message


def test_malformed_yaml_bad_indentation_line(tmp_path):
    path = write_params(tmp_path, "base:\n  seed: 1\n   model: x\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert f"{path}:3:" in str(caught.value)


def test_top_level_must_be_mapping(tmp_path):
    path = write_params(tmp_path, "- base\n- train\n")
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert str(path) in str(caught.value)
    assert "expected a mapping" in str(caught.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "params.yaml"
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: params file not found"



def test_evaluate_cutoffs_give_measures_depth_and_headline(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("evaluate:\n  ndcg_at: [5, 10]\n  recall_at: [1, 1000]\n  mrr_at: []\n  map_at: []\n  precision_at: []\n")
    settings = load_params(path).evaluate
    assert settings.measures() == ("nDCG@5", "nDCG@10", "R@1", "R@1000")
    assert settings.depth == 1000
    assert settings.headline == "ndcg@5"


def test_truncate_default_dim_must_be_listed(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("truncate_eval:\n  dims: [64, 32]\n  default_dim: 48\n")
    with pytest.raises(PipelineError, match=r"key .truncate_eval.: Value error, default_dim 48 must be one of dims"):
        load_params(path)


def test_train_logging_steps_must_be_positive(tmp_path):
    assert load_params(write_params(tmp_path, "")).train.logging_steps == 10
    with pytest.raises(PipelineError) as caught:
        load_params(write_params(tmp_path, "train:\n  logging_steps: 0\n"))
    assert "train.logging_steps" in str(caught.value)
