"""dvc.yaml lists, for every stage, each project module the stage's code imports (directly or through other
modules), so that changing shared code reruns exactly the stages that run it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(module: str) -> set[str]:
    """``module`` and every ``stages.*`` module it imports, transitively (imports inside functions count)."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((ROOT / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if isinstance(node, ast.ImportFrom) and node.module == "stages":  # `from stages import distributed`
                names = [f"stages.{alias.name}" for alias in node.names]
            pending += [n for n in names if n.startswith("stages.") and (ROOT / (n.replace(".", "/") + ".py")).exists()]
    return seen


def stage_definitions() -> list[tuple[str, dict]]:
    """(name, definition) of each stage; a `foreach` stage by its `do` template."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return [(name, stage.get("do", stage)) for name, stage in stages.items()]


@pytest.mark.parametrize("name,stage", stage_definitions(), ids=[name for name, _ in stage_definitions()])
def test_every_imported_module_is_a_dependency(name: str, stage: dict) -> None:
    command = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    assert command, f"{name}: expected `python -m stages.<module>` in {stage['cmd']!r}"
    needed = {module.replace(".", "/") + ".py" for module in imported_modules(command.group(1))}
    declared = {dep if isinstance(dep, str) else next(iter(dep)) for dep in stage.get("deps", [])}
    assert sorted(needed - declared) == [], f"{name}: dvc.yaml deps miss modules its code imports"
    stale = sorted(dep for dep in declared if dep.startswith("stages/") and dep not in needed)
    assert stale == [], f"{name}: dvc.yaml lists modules the stage does not import"
