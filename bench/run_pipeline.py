"""Run the real pipeline (`dvc repro`, stage by stage) on a BEIR dataset under named configurations.

Each configuration gets its own copy of the template (dvc.yaml, params.yaml, stages/, embedft/) in a fresh
git + DVC repo under ``--workdir``, with ``data.dir`` pointed at the dataset by path (nothing is copied). Every
stage is timed and its peak memory read; the metrics files are collected into
``bench/results/<dataset>-<config>.json``.

How this machine runs the pipeline is not a param: the work folder's ``machine.yaml`` is the template's own
(``machine.yaml`` in the repository root, or the file named by ``EMBEDFT_MACHINE_FILE``, when there is one)
with the ``--machine key=value`` settings on top; ``EMBEDFT_<KEY>`` environment variables still apply to the
stages. The settings in effect are recorded in the result file.

Usage:
    python bench/run_pipeline.py --dataset ../shared/bench/scifact --configs plain default corpus_only
    python bench/run_pipeline.py --configs default --machine device=cuda --machine encode_batch_size=256 \
        --set train.batch_size=128
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from embedft.config import MachineSettings, load_machine, load_params
from embedft.config.machine import ENV_PREFIX, MACHINE_FILE_VARIABLE
from embedft.core import PipelineError

ROOT = Path(__file__).resolve().parents[1]
# Round 1's stages in pipeline order (the `foreach` groups of later rounds are off by default)
STAGES = [name for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"].items()
          if "foreach" not in stage]

CONFIGS: dict[str, dict] = {
    # The recipe from the sentence-transformers tutorials: MNRL on the labelled pairs, batch 32, 1 epoch,
    # lr 2e-5, no mined negatives, no Matryoshka, the model's own sequence length.
    "plain": {
        "synthesize": {"labelled": True, "title_to_text": False, "sections": False, "first_sentence": False},
        "mine_negatives": {"num_negatives": 0},
        "train": {"batch_size": 32, "epochs": 1, "learning_rate": 2.0e-5, "matryoshka_dims": [], "max_seq_length": 256,
                  "keep_best": False, "early_stopping_patience": 0},
    },
    # The template's params.yaml as shipped.
    "default": {},
    # The shipped params without mined negatives: in-batch negatives only. Against `default`, this measures
    # what hard-negative mining adds (nDCG@10); `default`'s metrics/mine.json has the false-negative rate
    # before and after the filters.
    "in_batch_only": {"mine_negatives": {"num_negatives": 0}},
    # No labelled queries used for training: pairs from the corpus structure only.
    "corpus_only": {"synthesize": {"labelled": False}},
    # Options of issue 15, each one change against `default` (docs/training.md says what each does).
    # Training on more of each abstract: 256 tokens instead of 128 (about twice the training time).
    "seq256": {"train": {"max_seq_length": 256}},
    # Hardness weighting of the mined negatives (EmbeddingGemma's setting).
    "hardness": {"train": {"hardness_mode": "hard_negatives", "hardness_strength": 5.0}},
    # GTE-style bidirectional terms: query->doc and doc->query in one softmax.
    "bidirectional": {"train": {"directions": ["query_to_doc", "doc_to_query"]}},
}


# Keys that were params and are machine settings now (machine.yaml, see machine.example.yaml): `--set` refuses
# them and names the `--machine` key instead.
MOVED_TO_MACHINE: dict[str, str] = {
    "base.device": "device",
    "base.on_missing_gpu": "on_missing_gpu",
    "base.encode_batch_size": "encode_batch_size",
    "base.search_chunk_size": "search_chunk_size",
    "mine_negatives.search_memory_mb": "search_memory_mb",
    "mine_negatives.cross_encoder_batch_size": "cross_encoder_batch_size",
    "train.mini_batch_size": "train_mini_batch_size",
    "train.gradient_checkpointing": "gradient_checkpointing",
    "train.resume": "resume",
    **{f"synthesize.llm.{key}": f"llm_{key}"
       for key in ("concurrency", "timeout_seconds", "max_retries", "backoff_initial_seconds", "backoff_max_seconds")},
}


def machine() -> dict:
    """CPU model, core count, GPU (if any) of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version()}


def measured(command: list[str], cwd: Path) -> dict:
    """Run ``command`` in a fresh wrapper process; return wall seconds and the peak RSS of its largest process."""
    probe = (
        "import subprocess, sys, time, json; from embedft.core import peak_rss_mb;"
        "t = time.perf_counter(); r = subprocess.run(sys.argv[1:]);"
        "w = time.perf_counter() - t;"
        "print(json.dumps({'rc': r.returncode, 'wall_s': round(w, 1),"
        " 'peak_rss_mb': peak_rss_mb(children=True)}), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *command], cwd=cwd, stderr=subprocess.PIPE, text=True)
    stats = json.loads(result.stderr.strip().splitlines()[-1])
    if stats["rc"] != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"{' '.join(command)} failed in {cwd}")
    return stats


def code_version() -> str:
    """The template's commit, with '+changes' when the working tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "stages", "embedft", "dvc.yaml", "params.yaml")
    return commit + ("+changes" if changed else "")


def dataset_params(dataset: Path) -> dict:
    """The `data` section for a BEIR folder: qrels/ (train/test as given) or a single qrels.tsv."""
    qrels = "qrels" if (dataset / "qrels").is_dir() else "qrels.tsv"
    return {"dir": str(dataset.resolve()), "corpus": "corpus.jsonl", "queries": "queries.jsonl", "qrels": qrels}


def apply_overrides(params: dict, overrides: dict) -> None:
    """Merge nested ``{section: {key: value}}`` into ``params``; a dict merges into the dict it replaces."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            apply_overrides(params[key], value)
        else:
            params[key] = value


def parse_settings(settings: list[str]) -> dict:
    """``["train.batch_size=128", "synthesize.llm.enabled=true"]`` as nested ``{section: {key: value}}`` (values
    read as YAML). A key that is a machine setting now stops with the ``--machine`` setting to use instead."""
    overrides: dict = {}
    for setting in settings:
        key, separator, value = setting.partition("=")
        if not separator or "." not in key:
            raise SystemExit(f"--set expects section.key=value, got {setting!r}")
        if key in MOVED_TO_MACHINE:
            raise SystemExit(f"--set {key}: not a param any more but a machine setting; use "
                             f"--machine {MOVED_TO_MACHINE[key]}={value} (see machine.example.yaml)")
        *sections, name = key.split(".")
        target = overrides
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = yaml.safe_load(value)
    return overrides


def parse_machine(settings: list[str]) -> dict:
    """``["device=cuda", "encode_batch_size=256"]`` as ``{key: value}`` (values read as YAML)."""
    known = sorted(MachineSettings.model_fields)
    values: dict = {}
    for setting in settings:
        key, separator, value = setting.partition("=")
        if not separator:
            raise SystemExit(f"--machine expects key=value, got {setting!r}")
        if key not in known:
            hint = (f"; did you mean --machine {MOVED_TO_MACHINE[key]}={value}?" if key in MOVED_TO_MACHINE
                    else f" (known: {', '.join(known)})")
            raise SystemExit(f"--machine {key}: not a machine setting{hint}")
        values[key] = yaml.safe_load(value)
    return values


def template_machine_file() -> Path:
    """The template's own machine settings: the file ``EMBEDFT_MACHINE_FILE`` names, else ``machine.yaml`` in the
    repository root (which need not exist)."""
    return Path(os.environ.get(MACHINE_FILE_VARIABLE) or ROOT / "machine.yaml")


def machine_environment() -> dict[str, str]:
    """The ``EMBEDFT_<KEY>`` variables the stages inherit (they override the work folder's machine.yaml)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIX) and k != MACHINE_FILE_VARIABLE}


def prepare(workdir: Path, dataset: Path, overrides: list[dict], machine_file: Path, machine_settings: dict) -> MachineSettings:
    """A fresh repo holding the template's pipeline with params for this dataset and configuration.

    Args:
        overrides: ``{section: {key: value}}`` params changes, applied in order (the configuration's, then the
            machine's ``--set``).
        machine_file: the template's machine settings (:func:`template_machine_file`); need not exist.
        machine_settings: ``{key: value}`` written over ``machine_file``'s settings into the work folder's
            ``machine.yaml``.

    Returns:
        The machine settings the stages will run with (the work folder's file, then the environment).
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", workdir)
    for package in ("stages", "embedft"):
        shutil.copytree(ROOT / package, workdir / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data" / "out_of_domain", workdir / "data" / "out_of_domain")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(dataset_params(dataset))
    for changes in overrides:
        apply_overrides(params, changes)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    machine_values = {**((yaml.safe_load(machine_file.read_text()) or {}) if machine_file.is_file() else {}), **machine_settings}
    (workdir / "machine.yaml").write_text(
        f"# Written by bench/run_pipeline.py: {machine_file if machine_file.is_file() else 'the defaults'}, "
        "then the --machine settings\n"
        + (yaml.safe_dump(machine_values, sort_keys=False) if machine_values else ""))
    try:  # a misspelt or mistyped key stops here, before any stage runs
        load_params(workdir / "params.yaml")
        in_effect = load_machine({**machine_environment(), MACHINE_FILE_VARIABLE: str(workdir / "machine.yaml")})
    except PipelineError as error:
        raise SystemExit(str(error)) from None
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=workdir, check=True)
    return in_effect


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def run_config(name: str, dataset: Path, workdir: Path, incremental: bool, param_settings: list[str],
               machine_file: Path, machine_settings: list[str]) -> dict:
    """Run every stage of one configuration, then (optionally) the no-op and truncate-only reruns.

    Args:
        param_settings: ``section.key=value`` params applied after the configuration's (a model path, a GPU
            batch size): they suit the machine, not the configuration.
        machine_file: the template's machine settings, under ``machine_settings``.
        machine_settings: ``key=value`` machine settings (a device, an inference batch size) for machine.yaml.
    """
    in_effect = prepare(workdir, dataset, [CONFIGS[name], parse_settings(param_settings)], machine_file,
                        parse_machine(machine_settings))
    stages = {stage: measured(["dvc", "repro", "--single-item", stage], workdir) for stage in STAGES}
    result = {
        "config": name,
        "overrides": CONFIGS[name],
        "param_settings": param_settings,
        "machine_settings": machine_settings,
        "machine_settings_in_effect": in_effect.model_dump(),
        "dataset": str(dataset),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "code_version": code_version(),
        "command": " ".join([*(f"{key}={shlex.quote(value)}" for key, value in machine_environment().items()),
                             "python bench/run_pipeline.py", f"--dataset {dataset} --configs {name}",
                             *(f"--set {setting}" for setting in param_settings),
                             *(f"--machine {setting}" for setting in machine_settings)]),
        "stages": stages,
        "total_wall_s": round(sum(s["wall_s"] for s in stages.values()), 1),
        # The full reports (metrics/ holds only their headline numbers), the training run's seconds and memory added
        # back from its log, so result files keep the layout bench/report.py reads.
        **{key: read_json(workdir / "reports" / f"{key}.json") for key in ("evaluate", "mine", "synthesize", "truncate")},
        "train": {**read_json(workdir / "reports" / "train.json"), **read_json(workdir / "logs" / "train.json")},
        "per_query": per_query_scores(workdir / "reports" / "evaluate_per_query.csv"),
    }
    if incremental:
        result["noop_repro"] = measured(["dvc", "repro"], workdir)
        params = yaml.safe_load((workdir / "params.yaml").read_text())
        params["truncate_eval"]["dims"] = [*params["truncate_eval"]["dims"], 16]
        (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        result["truncate_only_repro"] = measured(["dvc", "repro"], workdir)
    return result


def per_query_scores(path: Path, metrics: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10")) -> dict:
    """system -> metric -> query id -> score, from evaluate's per-query CSV."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    if not path.exists():
        return table
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        cells = line.split(",")
        system = table.setdefault(cells[1], {m: {} for m in metrics})
        for metric in metrics:
            system[metric][cells[0].strip('"')] = float(cells[header.index(metric)])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "bench" / "scifact")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "work")
    parser.add_argument("--no-incremental", action="store_true", help="skip the no-op and truncate-only rerun timings")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a params override for this machine, e.g. --set train.batch_size=128 (repeatable)")
    parser.add_argument("--machine", dest="machine_settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a machine setting for the work folder's machine.yaml, e.g. --machine device=cuda "
                        "(repeatable; keys: machine.example.yaml)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results",
                        help="where the <dataset>-<config>.json files go")
    args = parser.parse_args()
    parse_settings(args.settings)  # bad settings stop before any work
    parse_machine(args.machine_settings)
    template_file = template_machine_file()
    if MACHINE_FILE_VARIABLE in os.environ or template_file.is_file():
        try:
            load_machine({MACHINE_FILE_VARIABLE: str(template_file)})
        except PipelineError as error:
            raise SystemExit(str(error)) from None
    os.environ.pop(MACHINE_FILE_VARIABLE, None)  # its content is in each work folder's machine.yaml
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    for name in args.configs:
        started = time.perf_counter()
        result = run_config(name, args.dataset, args.workdir / f"{args.dataset.name}-{name}", not args.no_incremental,
                            args.settings, template_file, args.machine_settings)
        args.results.mkdir(parents=True, exist_ok=True)
        out = args.results / f"{args.dataset.name}-{name}.json"
        out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        ndcg = result["evaluate"].get("finetuned", {}).get("ndcg@10")
        print(f"{name}: {time.perf_counter() - started:.0f} s, nDCG@10 finetuned={ndcg} -> {out}")


if __name__ == "__main__":
    main()
