"""The error type for problems a user can cause, and the wrapper that turns it into one clear message."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path


class PipelineError(Exception):
    """A problem with the user's files or params: reported as one message, never as a traceback."""


class DataFileError(PipelineError):
    """A problem in an input file, located by path and (where it applies) line number."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class StageInterrupted(BaseException):
    """SIGTERM arrived: unwinds the stage like Ctrl-C does, so atomic writes delete their temporaries.

    A ``BaseException`` so that ``except Exception`` blocks in libraries cannot swallow it.
    """


def _raise_interrupted(signum: int, frame: object) -> None:
    raise StageInterrupted(signal.Signals(signum).name)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a :class:`PipelineError` ends it with its message and exit status 1.

    SIGTERM (what `kill`, job schedulers and torchrun send) and Ctrl-C stop the stage cleanly: nothing
    half-written is left at an output path, and the exit status is 128 + the signal number.
    """
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except (StageInterrupted, KeyboardInterrupt) as stop:
        name = str(stop) if isinstance(stop, StageInterrupted) else "SIGINT"
        print(f"error: stopped by {name}; no partial output was kept", file=sys.stderr)
        sys.exit(128 + signal.Signals[name].value)
