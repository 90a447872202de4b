"""End to end: the real `dvc repro` on a copy of the template, with a tiny model and tiny data.

Checks the metrics files and training curves, that a second `dvc repro` runs nothing, that changing a
`truncate_eval` param reruns only that stage, and that `dvc metrics diff` shows the numbers moving between two
runs. The first run is the session's `pristine_pipeline` (conftest.py); these tests change a copy of it,
`reproduced_pipeline`, which test_plots_render.py shares. A corpus without labels and queries without judgements
go through every stage's command in one process (`run_stages_in_one_process`), to pay the imports once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_tiny_dataset

pytestmark = pytest.mark.slow  # runs the whole pipeline with DVC

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
STAGE_NAMES = ["ingest", "split", "embed_corpus", "synthesize", "mine_negatives", "train", "embed_finetuned", "tune_hybrid",
               "evaluate", "truncate_eval"]
METRIC_KEYS = {"ndcg@10", "mrr@10", "map@100", "recall@1", "recall@10", "recall@100", "precision@10"}


def run(command: list[str], cwd: Path, check: bool = True, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command with the test interpreter's bin folder first on PATH (so `python` and `dvc` resolve).

    Args:
        environment: variables to set on top of this process's environment.
    """
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(environment or {}))
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def stages_run(output: str) -> list[str]:
    """Names of the stages that `dvc repro` actually ran, from its output."""
    return [name for name in STAGE_NAMES if f"Running stage '{name}'" in output]


def set_params(repo: Path, updates: dict[str, dict]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in updates.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


ONE_PROCESS_RUNNER = """
import runpy, sys
for name in sys.argv[1:]:
    print(f"Running stage '{name}':", flush=True)
    sys.argv = [f"stages/{name}.py"]
    runpy.run_module(f"stages.{name}", run_name="__main__", alter_sys=True)
"""


def run_stages_in_one_process(repo: Path) -> str:
    """Run the pipeline's stages in ``repo`` as `dvc repro` would on a fresh project (the commands of dvc.yaml, in
    its order) but in one Python process, and return what they printed.

    For the tests of what the stages do on other data: sentence-transformers is imported once, not once per stage
    (about 7 s each on 2 cores). What DVC does with the stages is tested on the reproduced template.
    """
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    names = [name for name, stage in pipeline.items() if "cmd" in stage]  # the templated optional stages have none
    assert [pipeline[name]["cmd"] for name in names] == [f"python -m stages.{name}" for name in names]
    return run([sys.executable, "-c", ONE_PROCESS_RUNNER, *names], repo).stdout


def make_template_copy(destination: Path, model_path: Path, with_labels: bool = True) -> Path:
    """Copy the template's pipeline files into a fresh git + DVC repo with tiny data and params."""
    destination.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(TEMPLATE_ROOT / name, destination / name)
    for package in ("stages", "embedft"):
        shutil.copytree(TEMPLATE_ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    # This machine's settings: not params, so changing them reruns nothing (test_machine_settings_rerun_nothing).
    (destination / "machine.yaml").write_text("encode_batch_size: 16\n", encoding="utf-8")
    write_tiny_dataset(destination / "data" / "sample", with_labels=with_labels)
    # The tiny set doubles as the out-of-domain set, so the forgetting check runs for real.
    write_tiny_dataset(destination / "data" / "out_of_domain")
    set_params(destination, {
        "base": {"model": str(model_path), "max_seq_length": 64},
        "split": {"train_fraction": 0.5, "dev_fraction": 0.1, "test_fraction": 0.4},
        # The tiny random model scores every pair alike: the relative margin would leave rows without a negative.
        "mine_negatives": {"range_min": 1, "range_max": 6, "num_negatives": 1, "relative_margin": None},
        "train": {"batch_size": 4, "max_seq_length": 64, "matryoshka_dims": [64, 32], "epochs": 1, "logging_steps": 1},
        "truncate_eval": {"dims": [64, 32]},
        "evaluate": {"recall_at": [1, 10, 100]},
    })
    run(["git", "init", "-q"], destination)
    run(["dvc", "init", "-q"], destination)
    shutil.copy(TEMPLATE_ROOT / ".dvcignore", destination / ".dvcignore")
    shutil.copytree(TEMPLATE_ROOT / ".dvc" / "plots", destination / ".dvc" / "plots")  # the charts' Vega-Lite templates
    run(["dvc", "config", "core.analytics", "false"], destination)
    return destination


@pytest.fixture
def repo(reproduced_pipeline) -> Path:
    return reproduced_pipeline[0]


def test_first_repro_runs_every_stage_and_writes_metrics(repo: Path, reproduced_pipeline) -> None:
    assert stages_run(reproduced_pipeline[1]) == STAGE_NAMES

    evaluate = json.loads((repo / "reports" / "evaluate.json").read_text())
    assert evaluate["test_queries"] > 0
    for system in ("base", "finetuned", "bm25", "hybrid", "delta_finetuned_vs_base"):
        assert set(evaluate[system]) == METRIC_KEYS, system
    for key in METRIC_KEYS:
        assert 0.0 <= evaluate["finetuned"][key] <= 1.0
        assert evaluate["delta_finetuned_vs_base"][key] == pytest.approx(evaluate["finetuned"][key] - evaluate["base"][key], abs=1e-5)
    assert evaluate["bm25"]["recall@100"] > 0

    assert set(evaluate["leakage"]) == {"exact", "normalised", "near_duplicate"}
    forgetting = evaluate["forgetting"]
    assert forgetting["queries"] == 12 and set(forgetting["base"]) == METRIC_KEYS
    assert forgetting["drop_ndcg@10"] == pytest.approx(forgetting["base"]["ndcg@10"] - forgetting["finetuned"]["ndcg@10"], abs=1e-5)
    assert evaluate["verdict"] in {"ship", "marginal", "regression"}
    assert set(evaluate["comparisons"]) == {"finetuned_vs_base", "finetuned_vs_bm25", "hybrid_vs_base", "hybrid_vs_finetuned",
                                           "hybrid_vs_hybrid_rrf", "hybrid_rrf_vs_base"}
    assert evaluate["shipped"]["chosen_on"] == "dev" and evaluate["shipped"]["line"].startswith("ship ")

    truncate = json.loads((repo / "reports" / "truncate.json").read_text())
    for system in ("base", "finetuned"):
        assert set(truncate[system]) == {"64", "32"}
        assert set(truncate[system]["32"]) == {"float32", "int8", "binary"}
        assert METRIC_KEYS <= set(truncate[system]["32"]["binary"])
        assert truncate[system]["64"]["float32"]["retention_ndcg@10_pct"] == 100.0
        assert truncate[system]["32"]["binary"]["bytes_per_vector"] == 4
    assert {k: truncate["base"]["64"]["float32"][k] for k in METRIC_KEYS} == pytest.approx(evaluate["base"])
    assert truncate["chosen_dim"]["dim"] == 64

    ndcg_by_dim = (repo / "plots" / "ndcg_by_dim.csv").read_text().splitlines()
    assert ndcg_by_dim[0] == "dim,base float32,base int8,base binary,fine-tuned float32,fine-tuned int8,fine-tuned binary"
    assert [line.split(",")[0] for line in ndcg_by_dim[1:]] == ["32", "64"]
    recall = (repo / "plots" / "recall_at_k.csv").read_text().splitlines()
    assert recall[0] == "k,base,fine-tuned,BM25,hybrid,hybrid RRF"

    train = json.loads((repo / "reports" / "train.json").read_text())
    assert sorted(p.name for p in (repo / "plots" / "train").iterdir()) == ["dev.tsv", "learning_rate.tsv", "loss.tsv"]
    dev_curve = (repo / "plots" / "train" / "dev.tsv").read_text().splitlines()
    assert dev_curve[0] == "step\tnDCG@10\tMRR@10\tRecall@10"
    assert [int(line.split("\t")[0]) for line in dev_curve[1:]] == [0, train["steps"]]
    assert set(train["dev"]) >= {"base", "best", "final", "best_step"} and train["dev"]["queries"] > 0
    assert "## Dev metrics" in (repo / "models" / "finetuned" / "README.md").read_text()
    loss = [line.split("\t") for line in (repo / "plots" / "train" / "loss.tsv").read_text().splitlines()]
    assert loss[0] == ["step", "loss"]
    assert [int(step) for step, _ in loss[1:]] == list(range(1, train["steps"] + 1))  # logging_steps: 1
    assert all(float(value) > 0 for _, value in loss[1:])
    rates = [line.split("\t") for line in (repo / "plots" / "train" / "learning_rate.tsv").read_text().splitlines()]
    assert rates[0] == ["step", "learning_rate"] and len(rates) == len(loss)
    assert (repo / "dvc.yaml").read_text() == (TEMPLATE_ROOT / "dvc.yaml").read_text()  # the train stage left it alone
    assert run(["git", "for-each-ref", "refs/exps"], repo).stdout == ""  # and made no experiment
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert "plots/train" in {out["path"] for out in lock["stages"]["train"]["outs"]}

    for name in ("train", "dev", "test"):
        assert (repo / "data" / "split" / name / "qrels.tsv").exists()
    synthesize = json.loads((repo / "reports" / "synthesize.json").read_text())
    assert synthesize["total_pairs"] == sum(source["kept"] for source in synthesize["sources"].values()) > 0
    assert synthesize["llm"]["passages"] == 0  # no LLM configured by default
    assert json.loads((repo / "logs" / "synthesize.json").read_text())["llm"]["requests"] == 0
    review = (repo / "reviews" / "synthesize.md").read_text()
    assert "## Kept" in review and "## Dropped" in review
    ingested = json.loads((repo / "reports" / "ingest.json").read_text())
    assert ingested["documents"] == 12 and set(ingested) == {"documents", "markup"}  # a corpus.jsonl: markup counted only
    negatives = [json.loads(line) for line in (repo / "data" / "negatives" / "negatives.jsonl").read_text().splitlines()]
    assert negatives and all({"anchor", "positive", "negative_1"} <= set(row) for row in negatives)

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(repo / "models" / "finetuned"), device="cpu")
    assert model.encode(["hello"]).shape == (1, 64)
    assert not (repo / ".checkpoints" / "train").exists()


def test_second_repro_runs_nothing(repo: Path) -> None:
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == []
    assert "dvc.yaml" in run(["dvc", "status"], repo).stdout or "up to date" in run(["dvc", "status"], repo).stdout


RUN_MEASUREMENT_WORDS = ("seconds", "per_second", "rss", "gpu_mb", "device", "cache_hits", "requests", "resumed")


def leaves(value, prefix: str = "") -> dict[str, object]:
    """A nested dict's values by dotted key, as `dvc metrics show` prints them."""
    if not isinstance(value, dict):
        return {prefix: value}
    return {key: leaf for name, item in value.items() for key, leaf in leaves(item, f"{prefix}.{name}" if prefix else name).items()}


def test_metrics_are_the_few_numbers_a_reviewer_compares(repo: Path) -> None:
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    values = {f"{path}:{key}": value for path, content in next(iter(shown.values()))["data"].items()
              for key, value in leaves(content["data"]).items()}
    assert len(values) <= 40, sorted(values)
    expected = ["metrics/evaluate.json:finetuned.ndcg@10", "metrics/evaluate.json:base.recall@100", "metrics/evaluate.json:bm25.ndcg@10",
                "metrics/evaluate.json:finetuned_vs_base.ci_low", "metrics/evaluate.json:finetuned_vs_base.p_value",
                "metrics/evaluate.json:verdict", "metrics/evaluate.json:test_queries", "metrics/train.json:pairs",
                "metrics/train.json:steps", "metrics/mine.json:false_negative_rate_after_filters",
                "metrics/truncate.json:finetuned_retention_pct.float32"]
    assert [key for key in expected if key not in values] == []
    assert [key for key in values if any(word in key for word in RUN_MEASUREMENT_WORDS)] == []
    # Nothing is lost: the full tables are report files, the run's seconds and memory a log outside DVC.
    assert set(json.loads((repo / "reports" / "truncate.json").read_text())["finetuned"]) == {"64", "32"}
    log = json.loads((repo / "logs" / "train.json").read_text())
    assert log["train_seconds"] > 0 and log["pairs_per_second"] > 0 and log["device"] == "cpu"
    assert "logs/" in (TEMPLATE_ROOT / ".gitignore").read_text().split()


def test_machine_settings_rerun_nothing(repo: Path) -> None:
    """Device, batch sizes, chunk sizes and resuming describe the machine, not the result: a laptop's settings
    swapped for a workstation's (file and environment) leave every stage up to date."""
    machine = repo / "machine.yaml"
    original = machine.read_text(encoding="utf-8")
    machine.write_text("device: cpu\nencode_batch_size: 7\nsearch_chunk_size: 5\nsearch_memory_mb: 2\n"
                       "train_mini_batch_size: 3\nresume: false\n", encoding="utf-8")
    try:
        result = run(["dvc", "repro"], repo, environment={"EMBEDFT_ON_MISSING_GPU": "cpu", "EMBEDFT_LLM_CONCURRENCY": "9"})
        assert stages_run(result.stdout) == []
    finally:
        machine.write_text(original, encoding="utf-8")


def test_truncate_param_reruns_only_truncate_eval(repo: Path) -> None:
    set_params(repo, {"truncate_eval": {"dims": [64, 32, 16]}})
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["truncate_eval"]
    truncate = json.loads((repo / "reports" / "truncate.json").read_text())
    assert set(truncate["finetuned"]) == {"64", "32", "16"}


def test_frozen_synthesize_is_kept_until_unfrozen(repo: Path) -> None:
    # As the README says: `frozen: true` by hand (`dvc freeze` cannot rewrite a stage that uses ${...}).
    pipeline = (repo / "dvc.yaml").read_text()
    (repo / "dvc.yaml").write_text(pipeline.replace("  synthesize:\n", "  synthesize:\n    frozen: true\n", 1))
    set_params(repo, {"synthesize": {"review": {"kept": 5, "dropped": 5}}})
    assert stages_run(run(["dvc", "repro"], repo).stdout) == []
    (repo / "dvc.yaml").write_text(pipeline)
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["synthesize"]  # the pairs are unchanged, so nothing after it reruns
    assert (repo / "reviews" / "synthesize.md").read_text().count("\n| ") <= 10 + 2


def test_metrics_diff_shows_changes_between_runs(repo: Path) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "first run"], repo)
    # ingest sizes passages by base.max_seq_length and synthesize reads the base model (its round-trip filter):
    # both are out of date when it changes, with the stages that embed (`dvc status` says so without running them)
    set_params(repo, {"base": {"max_seq_length": 24}})
    status = json.loads(run(["dvc", "status", "--json"], repo).stdout)
    reading_it = {stage for stage, changes in status.items() for change in changes if isinstance(change, dict)
                  if "base.max_seq_length" in change.get("changed deps", {}).get("params.yaml", {})}
    assert {"ingest", "embed_corpus", "synthesize", "embed_finetuned"} <= reading_it, status
    set_params(repo, {"base": {"max_seq_length": 64}, "train": {"learning_rate": 1e-3}})
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["train", "embed_finetuned", "tune_hybrid", "evaluate", "truncate_eval"]
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    changed = diff["metrics/evaluate.json"]
    assert any(key.startswith("finetuned.") for key in changed), changed
    assert not any(key.startswith("base.") for key in changed), changed  # the base model was not retrained


def test_corpus_without_labels_trains_and_says_so(tmp_path: Path, tiny_model_path: Path) -> None:
    project = make_template_copy(tmp_path / "unlabelled", tiny_model_path, with_labels=False)
    output = run_stages_in_one_process(project)
    assert stages_run(output) == STAGE_NAMES
    assert "no labelled test queries" in output
    assert json.loads((project / "metrics" / "evaluate.json").read_text()) == {"test_queries": 0}
    assert (project / "models" / "finetuned" / "modules.json").exists()


def test_queries_without_judgements_report_agreement(tmp_path: Path, tiny_model_path: Path) -> None:
    project = make_template_copy(tmp_path / "unjudged", tiny_model_path)
    (project / "data" / "sample" / "qrels.tsv").unlink()
    assert "no quality metric was computed" in run_stages_in_one_process(project)
    evaluate = json.loads((project / "reports" / "evaluate.json").read_text())
    assert evaluate["test_queries"] == 12 and evaluate["judged_queries"] == 0
    assert json.loads((project / "metrics" / "evaluate.json").read_text()) == {"test_queries": 12, "judged_queries": 0}
    assert set(evaluate["agreement_at_10"]) == {"base_vs_finetuned", "base_vs_bm25", "finetuned_vs_bm25"}
    assert all(0.0 <= v <= 1.0 for v in evaluate["agreement_at_10"].values())
