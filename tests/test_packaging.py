"""Packaging: the licence, no build artefacts in git, every declared dependency used (and nothing used that is not
declared), constraints.txt as the exact versions installed here, and the Makefile's install steps: `make run`
installs the pipeline's packages only, `make test` adds the test tools, both with the constraints, and another
TORCH_SPEC reinstalls torch (read from `make -n` with the stamps of a scratch VENV)."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from freeze_constraints import canonical, frozen_requirements  # noqa: E402  (a script, not a package)

PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
CONSTRAINTS = ROOT / "constraints.txt"
RUNTIME_EXTRAS = ("lora", "s3", "onnx", "faiss", "ray")
"""The optional extras a user installs for a feature; `test` holds tools, which are not imported by the code."""
NOT_IMPORTED = {
    "accelerate": "transformers' Trainer, which sentence-transformers trains with, needs it",
    "dvc": "the pipeline runs under `dvc repro`; embedft.reporting.pr_report runs `python -m dvc`",
    "pytrec-eval-terrier": "ir-measures computes the metrics of embedft.evaluation.ir_metrics with it",
    "dvc-s3": "DVC loads it for s3:// remotes",
    "onnx": "torch.onnx.export (embedft.encoding.onnx_graph, for export@onnx and encode_backend onnx) needs it",
}
"""Declared dependencies that the code uses without importing them, and who uses them."""


def requirement_names(text: str) -> list[str]:
    """The canonical distribution names of a TOML list of requirement strings."""
    return [canonical(re.match(r"[A-Za-z0-9._-]+", item).group(0)) for item in re.findall(r'"([^"]+)"', text)]


def declared_dependencies() -> dict[str, str]:
    """Canonical name -> where pyproject.toml declares it (``dependencies`` or an extra's name)."""
    block = re.search(r"^dependencies = \[(.*?)^\]", PYPROJECT, re.M | re.S).group(1)
    declared = {name: "dependencies" for name in requirement_names(re.sub(r"#.*", "", block))}
    for extra in RUNTIME_EXTRAS:
        for name in requirement_names(re.search(rf"^{extra} = \[(.*)\]$", PYPROJECT, re.M).group(1)):
            declared.setdefault(name, extra)
    return declared


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> the first file of embedft/ or stages/ that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for path in sorted([*(ROOT / "embedft").rglob("*.py"), *(ROOT / "stages").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def imported_distributions() -> dict[str, str]:
    """Canonical distribution name -> a file that imports one of its modules; stdlib and the project left out."""
    owners = importlib.metadata.packages_distributions()
    result, unknown = {}, []
    for module, where in imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in ("embedft", "stages", "__future__"):
            continue
        if module not in owners:
            unknown.append(f"{module} ({where})")
        for distribution in owners.get(module, []):
            result.setdefault(canonical(distribution), where)
    assert not unknown, f"imported, but no installed distribution provides them: {unknown}"
    return result


def test_licence_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"] and "END OF TERMS AND CONDITIONS" in text
    assert re.search(r'^license = "Apache-2.0"$', PYPROJECT, re.M) and re.search(r'^license-files = \["LICENSE"\]$', PYPROJECT, re.M)


def test_no_build_artefacts_are_tracked_and_a_fresh_install_adds_none() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    artefact = re.compile(r"(^|/)(build|dist|__pycache__|[^/]+\.egg-info)/|\.py[co]$|(^|/)(PKG-INFO|SOURCES\.txt)$")
    assert not [name for name in tracked if artefact.search(name)]
    # What `pip install -e .` or a wheel build writes into the project folder is ignored, so the work tree stays clean.
    for written in ("embedding_finetune_template.egg-info/PKG-INFO", "embedft/__pycache__/x.cpython-311.pyc", "build/lib/x.py",
                    "dist/embedding_finetune_template-0.1.0-py3-none-any.whl"):
        assert subprocess.run(["git", "check-ignore", "-q", "--no-index", written], cwd=ROOT).returncode == 0, written


def test_every_declared_dependency_is_used_and_every_import_declared() -> None:
    declared = declared_dependencies()
    imported = imported_distributions()
    unused = sorted(set(declared) - set(imported) - set(NOT_IMPORTED))
    assert not unused, f"declared in pyproject.toml but never imported: {unused}; drop them, or say in NOT_IMPORTED who uses them"
    undeclared = {name: where for name, where in imported.items() if name not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    stale = sorted((set(NOT_IMPORTED) & set(imported)) | (set(NOT_IMPORTED) - set(declared)))
    assert not stale, f"NOT_IMPORTED names packages that are imported, or not declared: {stale}"


def pins() -> dict[str, str]:
    """constraints.txt as canonical name -> version."""
    lines = [line for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    malformed = [line for line in lines if not re.fullmatch(r"[A-Za-z0-9._-]+==[^\s=]+", line)]
    assert not malformed, f"constraints.txt: not name==version: {malformed}"
    return {canonical(line.partition("==")[0]): line.partition("==")[2] for line in lines}


def test_constraints_pin_what_the_tests_run_on() -> None:
    """The pins are the installed versions (CI installs with them; regenerate with `make constraints` after an
    upgrade), cover every dependency but torch, and leave torch's build to TORCH_SPEC."""
    pinned = pins()
    header = CONSTRAINTS.read_text(encoding="utf-8").splitlines()[:6]
    assert any("make constraints" in line and "scripts/freeze_constraints.py" in line for line in header)
    assert not [name for name in pinned if name in ("torch", "triton", "embedding-finetune-template") or name.startswith("nvidia-")]
    missing = sorted(name for name in declared_dependencies() if name not in pinned and name != "torch")
    assert not missing, f"dependencies constraints.txt does not pin: {missing}"
    differ = {}
    for name, version in pinned.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # pinned for a tool that this environment does not hold: a constraint, not a requirement
        if installed != version:
            differ[name] = f"pinned {version}, installed {installed}"
    assert not differ, f"constraints.txt is not what runs here (run `make constraints` once the tests pass): {differ}"


def test_freeze_leaves_out_torch_and_the_project() -> None:
    frozen = dict(line.split("==", 1) for line in frozen_requirements())
    names = {canonical(name) for name in frozen}
    assert "torch" not in names and "embedding-finetune-template" not in names
    assert not [name for name in names if name.startswith("nvidia-") or name == "triton"]
    assert frozen["numpy"] == importlib.metadata.version("numpy")


# --- The Makefile's install steps, read from `make -n` with a scratch VENV ----------------------------------------

def make_dry_run(*arguments: str) -> str:
    """The commands `make -n` would run, as a user's shell starts it (no parent make's flags)."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    return subprocess.run(["make", "-n", *arguments], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout


def torch_stamp(output: str) -> str:
    """The torch stamp file that `make -n` would write (its name carries TORCH_SPEC's checksum)."""
    return re.search(r"> (\S+/\.torch-\d+)$", output, re.M).group(1)


@pytest.fixture
def installed_venv(tmp_path: Path) -> Path:
    """A scratch VENV whose stamps say: the default torch, the pipeline's packages and the test tools are in."""
    venv = tmp_path / "venv"
    venv.mkdir()
    stamps = [torch_stamp(make_dry_run(f"VENV={venv}", "setup")), venv / ".installed-run", venv / ".installed-test"]
    newest = max(os.stat(ROOT / name).st_mtime for name in ("pyproject.toml", "constraints.txt"))
    for order, stamp in enumerate(stamps):  # each newer than what it depends on, like a real install leaves them
        Path(stamp).touch()
        os.utime(stamp, (newest + 10 + order, newest + 10 + order))
    return venv


def test_make_run_installs_the_pipeline_only_and_make_test_adds_the_test_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run = make_dry_run(f"VENV={venv}", "run").splitlines()
    torch_install = run.index(f"{venv}/bin/python -m pip install --quiet torch==2.13.0")
    project_install = run.index(f"{venv}/bin/python -m pip install --quiet -c constraints.txt -e .")
    assert torch_install < project_install < run.index(f'PATH="{venv}/bin:$PATH" {venv}/bin/dvc repro')
    assert not [line for line in run if ".[test]" in line]
    test = make_dry_run(f"VENV={venv}", "test").splitlines()
    assert test.index(f"{venv}/bin/python -m pip install --quiet -c constraints.txt -e .") < \
        test.index(f'{venv}/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"')
    assert "-c" not in make_dry_run(f"VENV={venv}", "CONSTRAINTS=", "run").split()


def test_nothing_is_reinstalled_while_nothing_changed(installed_venv: Path) -> None:
    assert "pip" not in make_dry_run(f"VENV={installed_venv}", "run", "test")
    constraints_changed = make_dry_run(f"VENV={installed_venv}", "-W", "constraints.txt", "run")
    assert "-c constraints.txt -e ." in constraints_changed and "torch" not in constraints_changed


def test_another_torch_spec_reinstalls_torch_and_what_follows(installed_venv: Path) -> None:
    """The stamp carries the spec: a new TORCH_SPEC is a missing stamp, which uninstalls the old build (pip would
    keep any installed torch as satisfying the new spec), installs the new one, and reinstalls the project."""
    changed = make_dry_run(f"VENV={installed_venv}", "TORCH_SPEC=torch==2.12.0", "test").splitlines()
    assert f"{installed_venv}/bin/python -m pip install --quiet torch==2.12.0" in changed
    assert any("pip uninstall --quiet --yes torch" in line for line in changed)
    assert any(line.endswith("-c constraints.txt -e .") for line in changed)
    assert any(line.endswith('-e ".[test]"') for line in changed)
    assert torch_stamp("\n".join(changed)) != torch_stamp(make_dry_run(f"VENV={installed_venv}", "-B", "setup"))
