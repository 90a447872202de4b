"""Atomic outputs: a stage writes to a temporary sibling and renames it into place only when complete.

A stage killed half-way therefore leaves either the old output or none, never a half-written one that DVC
could cache as complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from embedft.core.errors import PipelineError
from embedft.core.processes import process_is_running

STORAGE_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
"""Write errors that mean the disk (or quota, or file-size limit) is full, not a bug."""

before_replace: Callable[[Path, Path], None] | None = None
"""Called with (temporary, final) when the temporary is complete, just before it replaces ``final``. None in the
pipeline; the tests set it to kill the process inside the rename window, which no real kill hits reliably."""


def remove_abandoned_temporaries(final: Path) -> list[Path]:
    """Delete the temporary siblings of ``final`` left by runs that were killed (SIGKILL, power loss).

    A temporary is abandoned when the process whose id it carries is no longer running; a concurrent run's
    temporary is left alone.

    Returns:
        the paths removed.
    """
    removed = []
    for candidate in final.parent.glob(f".{final.name}.tmp-*"):
        pid = candidate.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not process_is_running(int(pid)):
            _remove(candidate)
            removed.append(candidate)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(final: Path | str, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success it replaces ``final``, on error it is deleted.

    Args:
        final: where the output must end up.
        is_dir: create the temporary path as an (empty) directory for outputs that are folders.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    remove_abandoned_temporaries(final)
    _remove(temporary)
    if is_dir:
        temporary.mkdir()
    try:
        yield temporary
        if before_replace is not None:
            before_replace(temporary, final)
        if temporary.is_dir() or final.is_dir():
            _remove(final)  # os.replace cannot replace a folder; a file it replaces in one step, keeping the old until then
        os.replace(temporary, final)  # inside the try: a signal during the swap must still clean up
    except OSError as error:
        _remove(temporary)
        if error.errno in STORAGE_FULL:
            raise PipelineError(f"{final}: could not write the output ({os.strerror(error.errno)}); "
                                f"free some space and run again. The previous {final.name}, if any, is unchanged") from None
        raise
    except BaseException:
        _remove(temporary)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line endings) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="\n")


def write_json_atomic(path: Path | str, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON so that equal data gives byte-identical files."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")

