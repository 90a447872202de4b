"""The forgetting check on an out-of-domain BEIR folder."""

from __future__ import annotations

import pytest
from conftest import write_tiny_dataset

from embedft.config import BaseParams, EvaluateParams, MachineSettings
from embedft.core.errors import DataFileError
from embedft.encoding.models import load_model
from embedft.evaluation.forgetting import forgetting_report


def test_skipped_without_corpus(tmp_path):
    (tmp_path / "README.md").write_text("empty")
    assert forgetting_report(tmp_path, {}, BaseParams(), EvaluateParams(), MachineSettings()) is None


def test_drop_is_base_minus_finetuned(tmp_path, tiny_model_path):
    folder = write_tiny_dataset(tmp_path / "ood")
    model = load_model(str(tiny_model_path), "cpu")
    same = forgetting_report(folder, {"base": model, "finetuned": model}, BaseParams(), EvaluateParams(), MachineSettings())
    assert same["queries"] == 12 and same["documents"] == 12
    assert same["base"] == same["finetuned"]
    assert same["drop_ndcg@10"] == 0.0
    assert same["finetuned_vs_base"]["ties"] == 12


def test_qrels_folder_test_split_is_used(tmp_path, tiny_model_path):
    folder = write_tiny_dataset(tmp_path / "ood")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tjson.dumps\t1\nq1\tjson.loads\t1\n")
    model = load_model(str(tiny_model_path), "cpu")
    assert forgetting_report(folder, {"base": model, "finetuned": model}, BaseParams(), EvaluateParams(), MachineSettings())["queries"] == 2


def test_no_relevant_judgements_is_an_error(tmp_path, tiny_model_path):
    folder = write_tiny_dataset(tmp_path / "ood")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tjson.dumps\t0\n")
    with pytest.raises(DataFileError, match=r"qrels.tsv: no relevant judgements"):
        forgetting_report(folder, {"base": None, "finetuned": None}, BaseParams(), EvaluateParams(), MachineSettings())
