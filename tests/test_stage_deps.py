"""dvc.yaml lists, for every stage, its own file and each library subpackage its code imports (directly or
through other modules, at the top or inside functions), and nothing it does not import, so that changing
library code reruns exactly the stages that run it."""

from __future__ import annotations

import re

import pytest
import yaml
from import_graph import LIBRARY, ROOT, closure, module_path, subpackage


def stage_definitions() -> list[tuple[str, dict]]:
    """(name, definition) of each stage; a `foreach` stage by its `do` template."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return [(name, stage.get("do", stage)) for name, stage in stages.items()]


def declared_code(stage: dict) -> set[str]:
    """The stage's deps that are code: files under stages/ and folders under the library."""
    deps = {dep if isinstance(dep, str) else next(iter(dep)) for dep in stage.get("deps", [])}
    return {dep for dep in deps if dep.startswith(("stages/", f"{LIBRARY}/"))}


@pytest.mark.parametrize("name,stage", stage_definitions(), ids=[name for name, _ in stage_definitions()])
def test_code_deps_are_the_stage_file_and_the_subpackages_it_imports(name: str, stage: dict) -> None:
    command = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    assert command, f"{name}: expected `python -m stages.<module>` in {stage['cmd']!r}"
    loaded = closure(command.group(1))
    stage_files = {module.replace(".", "/") + ".py" for module in loaded if module.startswith("stages.") and module != "stages"}
    needed = stage_files | {f"{LIBRARY}/{sub}" for module in loaded if (sub := subpackage(module))}
    declared = declared_code(stage)
    assert sorted(needed - declared) == [], f"{name}: dvc.yaml deps miss code the stage imports"
    assert sorted(declared - needed) == [], f"{name}: dvc.yaml lists code the stage does not import"


def test_the_top_level_package_files_hold_no_code() -> None:
    """`embedft/__init__.py` and `stages/__init__.py` are imported by every stage but listed by none: they may
    hold a docstring only, so that they can never change a result."""
    import ast

    for package in (LIBRARY, "stages"):
        body = ast.parse(module_path(package).read_text(encoding="utf-8")).body
        code = [node for node in body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        assert code == [], f"{package}/__init__.py holds code"


def test_round_stages_read_the_code_of_their_round_one_stage() -> None:
    stages = dict(stage_definitions())
    for name, stage in stages.items():
        if name.endswith("_round"):
            first = stages[name.removesuffix("_round")]
            assert declared_code(stage) == declared_code(first), name
            assert stage["params"] == first["params"], name


def outputs(stage: dict) -> set[str]:
    return {out if isinstance(out, str) else next(iter(out)) for key in ("outs", "metrics", "plots") for out in stage.get(key, [])}


def test_measuring_stages_only_measure() -> None:
    """evaluate and truncate_eval write metrics, reports and plots, nothing a later stage trains or searches with;
    what later stages read comes from the stages that make it (round-2 mining reads embed_finetuned's embeddings)."""
    stages = dict(stage_definitions())
    for name in ("evaluate", "evaluate_round", "truncate_eval"):
        assert all(path.startswith(("metrics/", "reports/", "plots/")) for path in outputs(stages[name])), name
    # model_card is the one reader of results: it writes the card the model is published with (test metrics,
    # verdict, Matryoshka table), and nothing reads the card back.
    everything_read = {dep if isinstance(dep, str) else next(iter(dep)) for name, stage in stages.items() if name != "model_card"
                       for dep in stage.get("deps", [])}
    assert not any(path.startswith(("metrics/", "reports/", "logs/")) for path in everything_read), "a stage reads another's results"
    card = outputs(stages["model_card"])
    assert card == {"reports/model_card.md"} and not any("reports/model_card.md" in stage.get("deps", []) for stage in stages.values())
    assert "data/embeddings/finetuned" in stages["mine_negatives_round"]["deps"]
    assert "data/embeddings/finetuned" in outputs(stages["embed_finetuned"])


def test_bytecode_never_changes_a_hash() -> None:
    ignored = (ROOT / ".dvcignore").read_text(encoding="utf-8").split()
    assert "__pycache__/" in ignored and "*.pyc" in ignored


def test_every_output_path_of_the_code_is_an_output_in_dvc_yaml() -> None:
    """embedft/core/artifacts.py and dvc.yaml name the same outputs, for round 1 and round 2 and the export."""
    from embedft.core import artifacts

    templates = {path for _, stage in stage_definitions() for path in outputs(stage)}
    declared = {path.replace("${item}", item) for path in templates for item in ("2", "onnx")}
    written = {artifacts.CORPUS_DIR, artifacts.SPLIT_DIR, artifacts.PAIRS_DIR, artifacts.BASE_EMBEDDINGS_DIR,
               artifacts.SYNTHESIZE_REVIEW, artifacts.INGEST_REPORT, artifacts.EMBED_REPORT, artifacts.SYNTHESIZE_REPORT,
               artifacts.TRUNCATE_METRICS, artifacts.TRUNCATE_REPORT, artifacts.NDCG_BY_DIM_PLOT, artifacts.export_dir("onnx"),
               artifacts.export_metrics("onnx"), artifacts.MODEL_CARD}
    for number in (1, 2):
        paths = artifacts.round_paths(number)
        written |= {paths.negatives, paths.model, paths.model_embeddings, paths.mine_metrics, paths.mine_report,
                    paths.mine_review, paths.train_metrics, paths.train_report, paths.train_plots, paths.evaluate_metrics,
                    paths.evaluate_report, paths.per_query_table, paths.recall_plot, paths.hybrid_choice}
    assert sorted(str(path) for path in written if str(path) not in declared) == []
    run_logs = [artifacts.SYNTHESIZE_LOG, artifacts.round_paths(1).train_log, artifacts.round_paths(2).train_log]
    assert [str(path) for path in run_logs if str(path) in declared or path.parts[0] != "logs"] == []  # never an output
