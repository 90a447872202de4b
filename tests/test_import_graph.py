"""The library's import graph: subpackages import only those of lower layers (so no cycles, no upward imports),
through their faces (``__init__.py``), and stages import only faces."""

from __future__ import annotations

import importlib

import pytest
from import_graph import LAYERS, LIBRARY, ROOT, imports_of, project_modules, subpackage


def public_modules(package: str) -> set[str]:
    """Modules a package's face names in ``__all__`` (``embedft.core.artifacts``), which others may import directly."""
    face = importlib.import_module(package)
    return {f"{package}.{name}" for name in getattr(face, "__all__", ()) if hasattr(face, name)
            and type(getattr(face, name)).__name__ == "module"}


def test_every_subpackage_has_a_layer_and_a_face() -> None:
    folders = {path.name for path in (ROOT / LIBRARY).iterdir() if path.is_dir() and not path.name.startswith("__")}
    assert folders == set(LAYERS)
    for folder in folders:
        face = ROOT / LIBRARY / folder / "__init__.py"
        assert face.is_file() and face.read_text(encoding="utf-8").startswith('"""'), f"{folder} needs a face with a docstring"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_face_names_are_what_they_say(package: str) -> None:
    """A name the face exports is never a function hiding a submodule of the same name (the graph would misread it)."""
    face = importlib.import_module(f"{LIBRARY}.{package}")
    for name in getattr(face, "__all__", ()):
        assert hasattr(face, name), f"{face.__name__}.__all__ names {name}, which it does not define"
        if (ROOT / LIBRARY / package / f"{name}.py").is_file():
            assert type(getattr(face, name)).__name__ == "module", f"{face.__name__}.{name} hides the module {name}.py"


@pytest.mark.parametrize("module", [m for m in project_modules() if subpackage(m)])
def test_imports_go_down_the_layers_only(module: str) -> None:
    own = subpackage(module)
    for imported in imports_of(module):
        other = subpackage(imported)
        if other is None or other == own:
            continue
        assert LAYERS[other] < LAYERS[own], f"{module} imports {imported}: {other} is not below {own}"


@pytest.mark.parametrize("module", project_modules())
def test_other_packages_are_imported_through_their_faces(module: str) -> None:
    own = subpackage(module)
    for imported in imports_of(module):
        other = subpackage(imported)
        if other is None or other == own or imported == f"{LIBRARY}.{other}":
            continue
        assert imported in public_modules(f"{LIBRARY}.{other}"), (
            f"{module} imports {imported}: import from the face `{LIBRARY}.{other}` so a later split touches no caller")


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_a_module_never_imports_its_own_face(package: str) -> None:
    face = f"{LIBRARY}.{package}"
    for module in project_modules():
        if subpackage(module) == package and module != face:
            assert face not in imports_of(module), f"{module} imports its own face {face}: import the sibling module"


def test_no_import_cycle_between_modules() -> None:
    graph = {module: {m for m in imports_of(module, top_level_only=True) if m != module} for module in project_modules()}
    visiting, done = set(), set()

    def visit(module: str, path: list[str]) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join(path[path.index(module):] + [module])
        visiting.add(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*path, module])
        visiting.discard(module)
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_pull_request_report_needs_neither_numpy_nor_torch() -> None:
    """The PR workflow installs DVC, pydantic and PyYAML only: reporting, config and core must import without numpy."""
    import subprocess
    import sys

    probe = ("import sys, embedft.reporting.pr_report, embedft.reporting.pr_comment; "
             "print(sorted(m for m in ('numpy', 'torch', 'sentence_transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
