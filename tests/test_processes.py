"""The platform-dependent process facts (embedft.core.processes) on Linux, and what the code does where Linux is
not: macOS's ru_maxrss unit (sys.platform set to darwin), Windows' missing ``resource`` module (blocked in a fresh
interpreter before anything is imported) and its ``os.kill`` that terminates (sys.platform set to win32, with
os.kill made to fail). The Windows and macOS system calls themselves cannot run here."""

from __future__ import annotations

import ast
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import psutil  # imported before sys.platform is changed below: its import picks the backend of the real platform
import pytest

from embedft.core import peak_rss_mb, process_is_running

ROOT = Path(__file__).resolve().parents[1]
POSIX_ONLY_MODULES = {"resource", "fcntl", "pwd", "grp", "termios", "pty", "tty", "posix"}
"""Standard-library modules that Windows lacks."""
PLATFORM_MODULE = ROOT / "embedft" / "core" / "processes.py"


def finished_process_id() -> int:
    """The id of a child that has exited and been reaped, so no process has it (until the system reuses it)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


REAL_KILL = os.kill


def refuse_kill(pid: int, signal: int) -> None:
    """os.kill for psutil's Linux backend, which stands in for its Windows one here; an error for anyone else."""
    if not sys._getframe(1).f_globals["__name__"].startswith("psutil"):
        raise AssertionError(f"os.kill({pid}, {signal}) called: on Windows that terminates the process")
    REAL_KILL(pid, signal)


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_process_is_running_tells_running_from_finished(platform: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = finished_process_id()
    monkeypatch.setattr(sys, "platform", platform)
    if platform == "win32":
        monkeypatch.setattr(os, "kill", refuse_kill)
    assert process_is_running(os.getpid())
    assert process_is_running(os.getppid())
    assert not process_is_running(gone)
    assert psutil.pid_exists(os.getpid())  # what the Windows branch asks


def test_peak_memory_is_in_mib_on_linux() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    peak = peak_rss_mb()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert round(before / 1024, 1) <= peak <= round(after / 1024, 1)
    assert peak > 10  # a Python process with pytest loaded holds more than 10 MiB: kilobytes were not taken for bytes


def test_peak_memory_of_children_is_theirs() -> None:
    subprocess.run([sys.executable, "-c", "block = bytearray(200 * 2**20); block[::4096] = b'x' * len(block[::4096])"],
                   check=True)
    assert peak_rss_mb(children=True) >= 200


def test_peak_memory_on_macos_reads_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS reports ru_maxrss in bytes: the same reading gives 1024 times fewer MiB than on Linux."""
    monkeypatch.setattr(sys, "platform", "darwin")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak_rss_mb()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert round(before / 2**20, 1) <= peak <= round(after / 2**20, 1)


WITHOUT_RESOURCE = """
import importlib, json, logging, os, sys
from pathlib import Path

import psutil  # first: psutil's Linux backend needs resource (its Windows backend does not)

sys.modules["resource"] = None  # `import resource` now raises ImportError, as on Windows
logging.basicConfig(level=logging.INFO, format="%(message)s")

stages = sorted(p.stem for p in Path("stages").glob("*.py") if p.stem != "__init__")
for stage in stages:
    importlib.import_module(f"stages.{stage}")

from embedft.core import atomic_path, peak_rss_mb
from embedft.training.run_report import peak_memory_mb

real_kill = os.kill

def refuse_kill(pid, signal):  # psutil's Linux backend stands in for its Windows one; nobody else may call it
    if not sys._getframe(1).f_globals["__name__"].startswith("psutil"):
        raise AssertionError(f"os.kill({pid}, {signal}) called: on Windows that terminates the process")
    real_kill(pid, signal)

sys.platform = "win32"  # only now: the libraries above must not see it while they import
os.kill = refuse_kill
final = Path(sys.argv[1]) / "out.txt"
abandoned = final.with_name(f".out.txt.tmp-{sys.argv[2]}")
abandoned.write_text("left by a killed run")
with atomic_path(final) as temporary:
    temporary.write_text("new")
print(json.dumps({"stages": stages, "peak": peak_rss_mb(), "children": peak_rss_mb(children=True),
                  "train_memory": peak_memory_mb("cpu"), "abandoned_left": abandoned.exists(),
                  "final": final.read_text()}))
"""


def test_every_stage_imports_and_runs_without_the_resource_module(tmp_path: Path) -> None:
    """Windows has no ``resource``: every stage still imports, atomic writes still clear a dead run's temporary,
    and peak memory is reported as unknown (left out of the training run log) when psutil has no peak either."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_RESOURCE, str(tmp_path), str(finished_process_id())],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "train" in report["stages"] and "ingest" in report["stages"]
    assert report["peak"] is None and report["children"] is None  # Linux's psutil has no peak working set
    assert report["train_memory"] == {}
    assert "peak memory is not measured on this platform" in result.stderr
    assert report["abandoned_left"] is False and report["final"] == "new"


def project_sources() -> list[Path]:
    """The project's Python files, as git sees them (tracked or new, not ignored: bench/work/ holds copies)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "embedft", "stages", "bench",
                             "scripts"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return sorted(ROOT / name for name in listed if name.endswith(".py") and (ROOT / name).is_file())


def test_posix_only_calls_live_in_one_module() -> None:
    """Only embedft/core/processes.py may import a module Windows lacks or call os.kill, and it guards both."""
    found = []
    for path in project_sources():
        if path == PLATFORM_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names if name in POSIX_ONLY_MODULES]
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.kill", "os.killpg", "os.getuid", "os.fork"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {ast.unparse(node.func)}")
    assert not found, "POSIX-only code outside embedft/core/processes.py: " + "; ".join(found)
