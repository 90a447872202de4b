"""Run the real pipeline (`dvc repro`, stage by stage) on a BEIR dataset under named configurations.

Each configuration gets its own copy of the template (dvc.yaml, params.yaml, stages/) in a fresh git + DVC
repo under ``--workdir``, with ``data.dir`` pointed at the dataset by path (nothing is copied). Every stage
is timed and its peak memory read; the metrics files are collected into ``bench/results/<dataset>-<config>.json``.

Usage:
    python bench/run_pipeline.py --dataset ../shared/bench/scifact --configs plain default corpus_only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

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
        "import resource, subprocess, sys, time, json;"
        "t = time.perf_counter(); r = subprocess.run(sys.argv[1:]);"
        "w = time.perf_counter() - t;"
        "print(json.dumps({'rc': r.returncode, 'wall_s': round(w, 1),"
        " 'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}), file=sys.stderr)"
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
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no", "--", "stages", "dvc.yaml", "params.yaml") else "")


def dataset_params(dataset: Path) -> dict:
    """The `data` section for a BEIR folder: qrels/ (train/test as given) or a single qrels.tsv."""
    qrels = "qrels" if (dataset / "qrels").is_dir() else "qrels.tsv"
    return {"dir": str(dataset.resolve()), "corpus": "corpus.jsonl", "queries": "queries.jsonl", "qrels": qrels}


def apply_overrides(params: dict, overrides: dict) -> None:
    """Merge ``{section: {key: value}}`` into ``params``; a nested dict merges into the section's own."""
    for section, values in overrides.items():
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(params[section].get(key), dict):
                params[section][key].update(value)
            else:
                params[section][key] = value


def parse_settings(settings: list[str]) -> dict:
    """``["base.device=cuda", "train.batch_size=128"]`` as ``{section: {key: value}}`` (values read as YAML)."""
    overrides: dict = {}
    for setting in settings:
        key, separator, value = setting.partition("=")
        section, dot, name = key.partition(".")
        if not separator or not dot:
            raise SystemExit(f"--set expects section.key=value, got {setting!r}")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    return overrides


def prepare(workdir: Path, dataset: Path, *overrides: dict) -> None:
    """A fresh repo holding the template's pipeline with params for this dataset and configuration.

    Args:
        overrides: ``{section: {key: value}}`` params changes, applied in order (the configuration's, then the
            machine's).
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", workdir)
    shutil.copytree(ROOT / "stages", workdir / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data" / "out_of_domain", workdir / "data" / "out_of_domain")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(dataset_params(dataset))
    for changes in overrides:
        apply_overrides(params, changes)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=workdir, check=True)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def run_config(name: str, dataset: Path, workdir: Path, incremental: bool, machine_settings: list[str]) -> dict:
    """Run every stage of one configuration, then (optionally) the no-op and truncate-only reruns.

    Args:
        machine_settings: ``section.key=value`` params applied after the configuration's (a model path, a
            device, a GPU batch size): they describe the machine, not the configuration.
    """
    prepare(workdir, dataset, CONFIGS[name], parse_settings(machine_settings))
    stages = {stage: measured(["dvc", "repro", "--single-item", stage], workdir) for stage in STAGES}
    result = {
        "config": name,
        "overrides": CONFIGS[name],
        "machine_settings": machine_settings,
        "dataset": str(dataset),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "code_version": code_version(),
        "command": " ".join(["python bench/run_pipeline.py", f"--dataset {dataset} --configs {name}",
                             *(f"--set {setting}" for setting in machine_settings)]),
        "stages": stages,
        "total_wall_s": round(sum(s["wall_s"] for s in stages.values()), 1),
        **{key: read_json(workdir / "metrics" / f"{key}.json") for key in ("evaluate", "train", "mine", "synthesize", "truncate")},
        "per_query": per_query_scores(workdir / "metrics" / "evaluate_per_query.csv"),
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
                        help="a params override for this machine, e.g. --set base.device=cuda (repeatable)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results",
                        help="where the <dataset>-<config>.json files go")
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    for name in args.configs:
        started = time.perf_counter()
        result = run_config(name, args.dataset, args.workdir / f"{args.dataset.name}-{name}", not args.no_incremental,
                            args.settings)
        args.results.mkdir(parents=True, exist_ok=True)
        out = args.results / f"{args.dataset.name}-{name}.json"
        out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"{name}: {time.perf_counter() - started:.0f} s, nDCG@10 finetuned={result['evaluate'].get('finetuned', {}).get('ndcg@10')} -> {out}")


if __name__ == "__main__":
    main()
