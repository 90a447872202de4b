"""The error type for problems a user can cause, and the wrapper that turns it into one clear message."""

from __future__ import annotations

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


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a :class:`PipelineError` ends it with its message and exit status 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
