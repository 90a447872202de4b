"""Running a stage: its log output, a user's error as one message, and a clean stop on SIGTERM or Ctrl-C.

Library code logs through ``logging.getLogger(__name__)`` and never names the stage that called it; the stage's
``main`` prints its own summary lines. :func:`run_stage` sets up the log output so that every line still says
which stage wrote it (``train: warning: ...``). ``LOG_LEVEL=DEBUG`` (or INFO, WARNING, ERROR) sets how much is
shown; the default is INFO.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from embedft.core.errors import PipelineError

LOG_LEVEL_VARIABLE = "LOG_LEVEL"
"""The environment variable that sets the log level (DEBUG, INFO, WARNING, ERROR)."""


class StageInterrupted(BaseException):
    """SIGTERM arrived: unwinds the stage like Ctrl-C does, so atomic writes delete their temporaries.

    A ``BaseException`` so that ``except Exception`` blocks in libraries cannot swallow it.
    """


class StageFormatter(logging.Formatter):
    """``<stage>: <message>`` for INFO, ``<stage>: warning: <message>`` above it, and the logger's name at DEBUG."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        elif record.levelno < logging.INFO:
            message = f"debug: [{record.name}] {message}"
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        return f"{self.stage}: {message}"


def configure_logging(stage: str, level: str | None = None) -> None:
    """Send the project's log records to standard error as ``<stage>: ...`` lines.

    Args:
        stage: the stage's name, put before every line.
        level: DEBUG, INFO, WARNING or ERROR; ``None`` reads ``LOG_LEVEL`` from the environment (default INFO).

    Raises:
        PipelineError: the level is not one of those names.
    """
    name = (level or os.environ.get(LOG_LEVEL_VARIABLE) or "INFO").strip().upper()
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise PipelineError(f"{LOG_LEVEL_VARIABLE}={name!r}: expected DEBUG, INFO, WARNING or ERROR")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StageFormatter(stage))
    project = logging.getLogger("embedft")
    project.handlers[:] = [handler]
    project.setLevel(name)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise StageInterrupted(signal.Signals(signum).name)


def stage_name(main: Callable[..., None]) -> str:
    """``train`` for the ``main`` of ``stages.train``, whether imported or run with ``python -m``."""
    module = main.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec else os.path.splitext(os.path.basename(sys.argv[0]))[0]
    return module.rpartition(".")[2]


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a :class:`PipelineError` ends it with its message and exit status 1.

    SIGTERM (what `kill`, job schedulers and torchrun send) and Ctrl-C stop the stage cleanly: nothing
    half-written is left at an output path, and the exit status is 128 + the signal number.
    """
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        configure_logging(stage_name(main))
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except (StageInterrupted, KeyboardInterrupt) as stop:
        name = str(stop) if isinstance(stop, StageInterrupted) else "SIGINT"
        print(f"error: stopped by {name}; no partial output was kept", file=sys.stderr)
        sys.exit(128 + signal.Signals[name].value)
