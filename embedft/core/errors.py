"""The error types for problems a user can cause: each is reported as one message, never as a traceback."""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """A problem with the user's files, params or machine settings: reported as one message, never as a traceback."""


class DataFileError(PipelineError):
    """A problem in an input file, located by path and (where it applies) line number."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
