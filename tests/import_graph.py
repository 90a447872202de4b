"""The project's import graph, read from the source with ``ast`` (nothing is imported): which project modules each
module imports, at the top or inside functions, and which subpackage each belongs to."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = "embedft"
LAYERS = {
    "core": 0, "testing": 0,
    "config": 1,
    "corpus": 2, "encoding": 2,
    "retrieval": 3,
    "pairs": 4, "mining": 4, "training": 4, "evaluation": 4, "export": 4,
    "reporting": 5,
}
"""Each subpackage's layer, lowest first: a subpackage imports only subpackages of lower layers (never one of
its own layer, never a higher one), so the graph has no cycles. docs/architecture.md draws the same layers."""


def module_path(module: str) -> Path | None:
    """The file of a project module (``embedft.core.rows`` or a package ``embedft.core``), or None."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def project_modules() -> list[str]:
    """Every module of the library and of stages/, by dotted name."""
    names = []
    for top in (LIBRARY, "stages"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@cache
def imports_of(module: str, top_level_only: bool = False) -> frozenset[str]:
    """The project modules ``module`` imports (``from pkg import submodule`` counts as the submodule).

    Args:
        module: a dotted module name.
        top_level_only: only the imports run when the module is imported, not those inside functions.
    """
    path = module_path(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_path(f"{node.module}.{alias.name}") is not None)
    return frozenset(name for name in found if name.split(".")[0] in (LIBRARY, "stages") and module_path(name))


def with_packages(module: str) -> list[str]:
    """``module`` and every package above it, whose ``__init__`` runs when it is imported."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(module: str) -> set[str]:
    """Every project module that importing (and running) ``module`` can load, package ``__init__``s included."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        for loaded in with_packages(name):
            if loaded not in seen:
                seen.add(loaded)
                pending.extend(imports_of(loaded))
    return seen


def subpackage(module: str) -> str | None:
    """``core`` for ``embedft.core.rows`` and ``embedft.core``; None for ``embedft`` itself and for stages."""
    parts = module.split(".")
    return parts[1] if parts[0] == LIBRARY and len(parts) > 1 else None
