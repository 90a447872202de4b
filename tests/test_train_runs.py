"""Tiny training runs: every loss, LoRA, the best checkpoint, OOM, a SIGKILL then resume, DDP with 2 processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_QUERIES
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from train_fixtures import mined_rows, scored_rows, write_jsonl, write_project

import embedft.training.fine_tuning
import stages.train
from embedft.config import BaseParams, Bm25Params, LoraParams, MachineSettings, TrainParams
from embedft.core.artifacts import SCORED_FILE, round_paths
from embedft.core.errors import PipelineError
from embedft.encoding.models import load_model
from embedft.training import CandidatePool
from embedft.training.data import build_training_set
from embedft.training.fine_tuning import fine_tune
from embedft.training.monitor import TrainingCurves, dev_evaluator, dev_metrics, load_dev_set

pytestmark = pytest.mark.slow  # trains models

MACHINE = MachineSettings(device="cpu", encode_batch_size=16)

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


def settings(**changes) -> TrainParams:
    values = dict(batch_size=4, learning_rate=1e-3, max_seq_length=32, matryoshka_dims=[64, 32], eval_steps=3, logging_steps=1)
    return TrainParams(**{**values, **changes})


def encode(model: SentenceTransformer) -> np.ndarray:
    return model.encode(TINY_QUERIES[:3], convert_to_numpy=True, normalize_embeddings=True)


def stage_env() -> dict[str, str]:
    """The test interpreter's bin first on PATH, the template importable, and nothing downloaded."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(TEMPLATE_ROOT),
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def test_fine_tune_keeps_the_best_dev_checkpoint_and_reports(tiny_model_path, tmp_path):
    project = write_project(tmp_path, tiny_model_path)
    base = BaseParams(model=str(tiny_model_path), seed=0, query_prompt="query: ", document_prompt="passage: ")
    train = settings(epochs=2, early_stopping_patience=0)
    training = build_training_set(train, project / "data" / "negatives", min_group_size=train.batch_size)
    dev = load_dev_set(project / "data" / "split", project / "data" / "corpus" / "corpus.jsonl", 0, base.seed)
    curves = TrainingCurves(tmp_path / "checkpoints" / "dvclive")

    model, report, facts = fine_tune(training, dev, base, train, MACHINE, tmp_path / "checkpoints", curves)

    assert report["pairs"] == 24 and report["pairs_by_source"] == {"labelled": 12, "title": 12}
    assert report["steps"] == 12 and report["pairs_seen"] == 48 and report["epochs"] == 2.0
    assert report["world_size"] == 1 and report["resumed_from_step"] == 0 and report["stopped_early"] == 0
    assert report["pairs_per_second"] > 0 and report["peak_rss_mb"] > 0 and report["device"] == "cpu"
    dev_report = report["dev"]
    assert dev_report["queries"] == 4 and dev_report["final_step"] == 12 and dev_report["best_step"] in (3, 6, 9, 12)
    assert set(dev_report["base"]) == set(dev_report["best"]) == {"ndcg@10", "mrr@10", "recall@10", "map@100"}
    assert dev_report["best"]["ndcg@10"] >= dev_report["final"]["ndcg@10"]
    # The returned model is the best checkpoint: it scores what the best evaluation logged.
    assert dev_metrics(dev_evaluator(dev, base, MACHINE)(model), prefix="") == pytest.approx(dev_report["best"], abs=1e-6)
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    assert facts.loss == "MatryoshkaLoss(MultipleNegativesRankingLoss, dims 64/32, weights 1/1)"
    ndcg = (tmp_path / "checkpoints" / "dvclive" / "metrics" / "dev_ndcg_at_10.tsv").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in ndcg[1:]] == [0, 3, 6, 9, 12]  # step 0 is the base model
    assert sorted(p.name for p in curves.publish(tmp_path / "plots")) == ["dev.tsv", "learning_rate.tsv", "loss.tsv"]
    dev_table = (tmp_path / "plots" / "dev.tsv").read_text().splitlines()
    assert dev_table[0] == "step\tnDCG@10\tMRR@10\tRecall@10"
    assert [int(line.split("\t")[0]) for line in dev_table[1:]] == [0, 3, 6, 9, 12]


def test_fine_tune_evaluates_on_the_candidate_pool(tiny_model_path, tmp_path):
    project = write_project(tmp_path, tiny_model_path)
    base = BaseParams(model=str(tiny_model_path), seed=0, max_seq_length=32)
    train = settings(max_steps=6, early_stopping_patience=0)
    training = build_training_set(train, project / "data" / "negatives", min_group_size=train.batch_size)
    pool = CandidatePool(project / "data" / "embeddings" / "base", base, MACHINE, 1, Bm25Params())
    dev = load_dev_set(project / "data" / "split", project / "data" / "corpus" / "corpus.jsonl", 0, base.seed, pool)

    model, report, _ = fine_tune(training, dev, base, train, MACHINE, tmp_path / "checkpoints")

    assert report["steps"] == 6 and report["dev"]["searched"] == "candidates"
    assert report["dev"]["queries"] == 4 and report["dev"]["documents"] == len(dev.documents) < 12
    assert report["dev"]["best_step"] in (3, 6) and set(report["dev"]["base"]) == {"ndcg@10", "mrr@10", "recall@10", "map@100"}
    # The model kept is the best evaluation on the pool.
    assert dev_metrics(dev_evaluator(dev, base, MACHINE)(model), prefix="") == pytest.approx(report["dev"]["best"], abs=1e-6)


def two_steps(model_path: Path, folder: Path, **changes) -> tuple[SentenceTransformer, dict, str]:
    """Two optimizer steps on mined rows with 1 and 2 negatives (and scored rows with 2): (model, report, loss as built)."""
    write_jsonl(folder / "negatives.jsonl", mined_rows(24, negatives=(1, 2)))
    write_jsonl(folder / SCORED_FILE, scored_rows(12))
    train = settings(max_steps=2, **changes)
    machine = MACHINE.model_copy(update={"train_mini_batch_size": 2})
    training = build_training_set(train, folder, train.batch_size)
    model, report, facts = fine_tune(training, None, BaseParams(model=str(model_path), seed=0), train, machine, folder / "checkpoints")
    assert report["steps"] == 2 and np.isfinite(report["train_loss"]) and "dev" not in report
    # Without a dev split nothing is chosen from checkpoints: the last step writes none (eval_steps 3 wrote none before).
    assert not list((folder / "checkpoints").glob("checkpoint-*"))
    return model, report, facts.loss


def test_a_run_without_dev_split_logs_its_last_step_and_writes_no_last_checkpoint(tiny_model_path, tmp_path):
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(24))
    train = settings(max_steps=5, logging_steps=4, eval_steps=100)
    training = build_training_set(train, tmp_path, train.batch_size)
    curves = TrainingCurves(tmp_path / "checkpoints" / "dvclive")

    fine_tune(training, None, BaseParams(model=str(tiny_model_path), seed=0), train, MACHINE, tmp_path / "checkpoints", curves)

    assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))
    curves.publish(tmp_path / "plots")
    assert [int(line.split("\t")[0]) for line in (tmp_path / "plots" / "loss.tsv").read_text().splitlines()[1:]] == [1, 4, 5]


@pytest.fixture(scope="module")
def untrained(tiny_model_path) -> np.ndarray:
    return encode(load_model(str(tiny_model_path), "cpu", 32))


@pytest.fixture(scope="module")
def plain_contrastive(tiny_model_path, tmp_path_factory) -> np.ndarray:
    """The default loss's model after :func:`two_steps`."""
    return encode(two_steps(tiny_model_path, tmp_path_factory.mktemp("plain"))[0])


@pytest.mark.parametrize("loss", ["CachedMultipleNegativesRankingLoss", "GISTEmbedLoss", "CachedGISTEmbedLoss", "TripletLoss",
                                  "CoSENTLoss", "MarginMSELoss", "DistillKLDivLoss"])
def test_every_loss_trains(tiny_model_path, tmp_path, untrained, loss):
    model, _, built = two_steps(tiny_model_path, tmp_path, loss=loss)
    assert built == f"MatryoshkaLoss({loss}, dims 64/32, weights 1/1)"
    assert not np.allclose(untrained, encode(model), atol=1e-5)  # the weights moved


@pytest.mark.parametrize("changes", [
    {"hardness_mode": "in_batch_negatives", "hardness_strength": 9.0},
    {"hardness_mode": "hard_negatives", "hardness_strength": 5.0},
    {"hardness_mode": "all_negatives", "hardness_strength": 5.0},
    {"directions": ["query_to_doc", "doc_to_query"], "partition_mode": "per_direction"},
    {"directions": ["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"]},
    {"orthogonal_weight": 1.0},
], ids=["hardness-in-batch", "hardness-hard", "hardness-all", "symmetric", "gte", "orthogonal"])
def test_each_contrastive_option_trains_a_different_model(tiny_model_path, tmp_path, untrained, plain_contrastive, changes):
    model, _, built = two_steps(tiny_model_path, tmp_path, **changes)
    assert built.startswith("MatryoshkaLoss(MultipleNegativesRankingLoss")
    trained = encode(model)
    assert not np.allclose(untrained, trained, atol=1e-5)  # the weights moved
    assert not np.allclose(plain_contrastive, trained, atol=1e-5)  # and not as the default loss moves them


def test_hardness_weighting_trains_with_the_cached_loss(tiny_model_path, tmp_path, untrained):
    model, _, _ = two_steps(tiny_model_path, tmp_path, loss="CachedMultipleNegativesRankingLoss",
                            hardness_mode="all_negatives", hardness_strength=5.0, directions=["query_to_doc", "doc_to_query"])
    assert not np.allclose(untrained, encode(model), atol=1e-5)


def test_lora_adapter_trains_and_the_saved_model_loads_plainly(tiny_model_path, tmp_path):
    project = write_project(tmp_path, tiny_model_path)
    base = BaseParams(model=str(tiny_model_path), seed=0)
    train = settings(epochs=2, learning_rate=1e-2, early_stopping_patience=0,
                     lora=LoraParams(enabled=True, r=4, alpha=8, target_modules=["query", "value"]))
    machine = MACHINE.model_copy(update={"gradient_checkpointing": True})
    dev = load_dev_set(project / "data" / "split", project / "data" / "corpus" / "corpus.jsonl", 0, base.seed)
    training = build_training_set(train, project / "data" / "negatives", 4)
    model, report, facts = fine_tune(training, dev, base, train, machine, tmp_path / "checkpoints")
    model.save(str(tmp_path / "saved"))

    assert not (tmp_path / "saved" / "adapter_config.json").exists() and facts.lora  # merged, not an adapter
    loaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert np.allclose(encode(loaded), encode(model), atol=1e-5)
    # The best checkpoint (adapters only) was loaded back before merging: the saved model scores what it logged.
    assert dev_metrics(dev_evaluator(dev, base, MACHINE)(loaded), prefix="") == pytest.approx(report["dev"]["best"], abs=1e-6)
    trained, original = load_file(tmp_path / "saved" / "model.safetensors"), load_file(tiny_model_path / "model.safetensors")
    changed = {name for name in original if not torch.equal(original[name], trained[name])}
    assert changed and all(".query." in name or ".value." in name for name in changed)  # only the adapted layers moved


def test_early_stopping_stops_when_dev_stops_improving(tiny_model_path, tmp_path):
    project = write_project(tmp_path, tiny_model_path)
    base = BaseParams(model=str(tiny_model_path), seed=0)
    train = settings(epochs=3, learning_rate=1e-9, eval_steps=2, early_stopping_patience=2, matryoshka_dims=[])
    dev = load_dev_set(project / "data" / "split", project / "data" / "corpus" / "corpus.jsonl", 0, base.seed)
    _, report, _ = fine_tune(build_training_set(train, project / "data" / "negatives", 4), dev, base, train, MACHINE, tmp_path / "ck")
    # A learning rate this small leaves the ranking as it is: after the first evaluation, two without a gain.
    assert report["stopped_early"] == 1 and report["steps"] == 6 and report["dev"]["best_step"] == 2


def test_missing_gist_guide_names_the_key(tiny_model_path, tmp_path):
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(8))
    train = settings(loss="GISTEmbedLoss", gist_guide=str(tmp_path / "no-such-model"))
    with pytest.raises(PipelineError, match=r"train.gist_guide: model path '.*no-such-model' does not exist"):
        fine_tune(build_training_set(train, tmp_path, 4), None, BaseParams(model=str(tiny_model_path)), train,
                  MACHINE, tmp_path / "checkpoints")


def test_out_of_memory_becomes_advice(tiny_model_path, tmp_path, monkeypatch):
    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(8))

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(SentenceTransformerTrainer, "train", out_of_memory)
    train = settings()
    with pytest.raises(PipelineError) as caught:
        fine_tune(build_training_set(train, tmp_path, 4), None, BaseParams(model=str(tiny_model_path)), train,
                  MACHINE, tmp_path / "checkpoints")
    message = str(caught.value)
    assert message.startswith("out of memory on cpu")
    assert "CachedMultipleNegativesRankingLoss" in message and "train.gradient_accumulation_steps" in message


def test_diverged_training_is_reported_not_saved(tiny_model_path, tmp_path, monkeypatch):
    from transformers.trainer_utils import TrainOutput

    write_jsonl(tmp_path / "negatives.jsonl", mined_rows(8))
    monkeypatch.setattr(SentenceTransformerTrainer, "train", lambda *args, **kwargs: TrainOutput(2, float("nan"), {}))
    train = settings()
    with pytest.raises(PipelineError, match=r"the training loss is nan \(training diverged\); lower train.learning_rate"):
        fine_tune(build_training_set(train, tmp_path, 4), None, BaseParams(model=str(tiny_model_path)), train,
                  MACHINE, tmp_path / "checkpoints")


def test_bad_settings_fail_before_any_model_is_loaded(tiny_model_path, tmp_path, monkeypatch):
    write_project(tmp_path, tiny_model_path, train={"loss": "MarginMSELoss"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(embedft.training.fine_tuning, "load_model_with", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(PipelineError, match="train.loss is MarginMSELoss, which trains on teacher scores"):
        stages.train.main([])
    write_project(tmp_path, tiny_model_path, train={"precision": "bf16"})
    monkeypatch.setattr(embedft.training.fine_tuning, "pick_device", lambda *args, **kwargs: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(PipelineError, match="train.precision is bf16"):
        stages.train.main([])
    assert not (tmp_path / "models").exists()


def test_round_two_reads_and_writes_its_own_paths(tiny_model_path, tmp_path, monkeypatch):
    paths = round_paths(2)
    write_project(tmp_path, tiny_model_path, train={"max_steps": 2}, negatives_dir=str(paths.negatives))
    monkeypatch.chdir(tmp_path)
    stages.train.main(["--round", "2"])
    assert json.loads(paths.train_metrics.read_text())["steps"] == 2
    assert (paths.train_plots / "loss.tsv").is_file() and not paths.checkpoints.exists()
    assert SentenceTransformer(str(paths.model), device="cpu").encode(["x"]).shape == (1, 64)
    card = (paths.model / "README.md").read_text()
    assert f"from `{paths.negatives / 'negatives.jsonl'}`" in card and f'SentenceTransformer("{paths.model}")' in card
    assert not Path("models/finetuned").exists() and not Path("metrics/train.json").exists()


KILL_AT_SAVE = """
import os, signal, sys
import stages.train as stage
from transformers import TrainerCallback

class KillAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind, as with the OOM killer or a power cut

original = stage.fine_tune
stage.fine_tune = lambda *args, **kwargs: original(*args, **{**kwargs, "callbacks": [KillAfterSave()]})
stage.run_stage(lambda: stage.main([]))
"""


def outputs_of_the_run() -> dict[str, bytes]:
    """The bytes of the train stage's outputs in the current folder, but the run log (seconds differ)."""
    folders = [Path("models/finetuned"), Path("plots/train")]
    files = [path for folder in folders for path in sorted(folder.rglob("*")) if path.is_file()]
    return {path.as_posix(): path.read_bytes() for path in [*files, Path("metrics/train.json"), Path("reports/train.json")]}


def test_killed_run_resumes_to_the_same_model(tiny_model_path, tmp_path, monkeypatch, caplog):
    # Logged at steps 1, 4, 8 and 12, checkpointed at 6 and 12: the kill at 6 falls between two logs.
    project = write_project(tmp_path / "project", tiny_model_path,
                            train={"early_stopping_patience": 0, "epochs": 2, "eval_steps": 6, "logging_steps": 4})
    killed = subprocess.run([sys.executable, "-c", KILL_AT_SAVE, "6"], cwd=project, env=stage_env(), capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (project / "models").exists() and not (project / "metrics").exists()  # nothing half-written
    assert (project / ".checkpoints" / "train" / "checkpoint-6" / "trainer_state.json").is_file()

    monkeypatch.chdir(project)
    caplog.set_level("INFO", logger="embedft")
    stages.train.main([])
    assert "resuming from .checkpoints/train/checkpoint-6" in caplog.text
    assert json.loads(Path("logs/train.json").read_text())["resumed_from_step"] == 6
    report = json.loads(Path("reports/train.json").read_text())
    assert report["steps"] == 6 * 2 and "resumed_from_step" not in report
    resumed = outputs_of_the_run()
    assert SentenceTransformer("models/finetuned", device="cpu").encode(["x"]).shape == (1, 64)
    # The loss is logged at the checkpoint too, so the resumed run knows the loss of every step before it.
    assert [int(line.split("\t")[0]) for line in Path("plots/train/loss.tsv").read_text().splitlines()[1:]] == [1, 4, 6, 8, 12]

    # The same run without the interruption gives the same weights, the same train_loss (the mean over all 12
    # steps, not over the 6 after resuming) and every other output the same, byte for byte.
    stages.train.main([])
    assert json.loads(Path("logs/train.json").read_text())["resumed_from_step"] == 0
    assert json.loads(Path("reports/train.json").read_text())["train_loss"] == report["train_loss"]
    assert outputs_of_the_run() == resumed


def model_file_hashes(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_saved_model_does_not_depend_on_the_environment(tiny_model_path, tmp_path):
    hashes = {}
    for offline in (True, False):
        project = write_project(tmp_path / f"offline_{offline}", tiny_model_path, train={"max_steps": 2})
        env = stage_env()
        if not offline:  # HF_HUB_OFFLINE made the tokenizer record "local_files_only": true
            for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
                env.pop(name)
        result = subprocess.run([sys.executable, "-m", "stages.train"], cwd=project, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        hashes[offline] = model_file_hashes(project / "models" / "finetuned")
        config = json.loads((project / "models" / "finetuned" / "tokenizer_config.json").read_text())
        assert "local_files_only" not in config and "is_local" not in config
    assert {"model.safetensors", "tokenizer_config.json", "config_sentence_transformers.json", "README.md"} <= set(hashes[True])
    assert hashes[True] == hashes[False]


def test_two_processes_with_torchrun(tiny_model_path, tmp_path):
    project = write_project(tmp_path / "project", tiny_model_path, train={"max_steps": 3, "eval_steps": 2})
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "stages.train"], cwd=project, env=stage_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((project / "reports" / "train.json").read_text())
    assert report["world_size"] == 2 and report["effective_batch_size"] == 8 and report["steps"] == 3
    assert result.stdout.count("train: 3 steps") == 1  # only the main process reports and writes
    model = SentenceTransformer(str(project / "models" / "finetuned"), device="cpu")
    assert model.encode(["hello"]).shape == (1, 64)
    assert not (project / ".checkpoints" / "train").exists()
