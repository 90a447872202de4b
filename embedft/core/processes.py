"""What the operating system says about a process: whether one is still running, and this process's peak memory.

The one place that knows Linux, macOS and Windows differ here, so no other module imports a POSIX-only module
(``resource`` is absent on Windows) or calls ``os.kill(pid, 0)`` (on Windows that terminates the process).
"""

from __future__ import annotations

import logging
import os
import sys

try:
    import resource
except ImportError:  # Windows
    resource = None

logger = logging.getLogger(__name__)

MAXRSS_BYTES_PER_UNIT = {"darwin": 1}
"""Bytes per unit of ``getrusage().ru_maxrss`` where it is not the kilobyte of Linux and the BSDs: macOS counts
bytes."""


def process_is_running(pid: int) -> bool:
    """True while a process with id ``pid`` exists, whoever owns it (it may be another user's).

    POSIX asks with signal 0, which checks the process without touching it. On Windows, where ``os.kill`` with
    any signal terminates the process, psutil (installed with accelerate) asks the system instead.
    """
    if sys.platform == "win32":
        import psutil

        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def peak_rss_mb(children: bool = False) -> float | None:
    """The largest resident memory (MiB, one decimal) this process has had so far, or None where it is unknown.

    Args:
        children: measure the largest of this process's finished child processes instead (POSIX only).

    Linux reports ``ru_maxrss`` in kilobytes and macOS in bytes; Windows has no ``resource`` module, so psutil's
    peak working set stands in for this process there, and the children's peak is unknown.
    """
    if resource is not None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
        return round(usage.ru_maxrss * MAXRSS_BYTES_PER_UNIT.get(sys.platform, 1024) / 2**20, 1)
    peak = None
    if not children:
        import psutil

        peak = getattr(psutil.Process().memory_info(), "peak_wset", None)  # Windows' peak working set, in bytes
    if peak is None:
        logger.info("peak memory is not measured on this platform (%s): no resource module%s", sys.platform,
                    "" if children else ", and psutil reports no peak working set")
        return None
    return round(peak / 2**20, 1)
