"""Library code logs (never prints, never names its caller); a stage's lines say which stage wrote them, and
LOG_LEVEL turns debug output on."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from embedft.core import PipelineError
from embedft.core.runner import configure_logging

DRIVER = """
import logging, sys
from embedft.core.runner import run_stage

def main():
    log = logging.getLogger("embedft.pairs.example")
    log.debug("a detail")
    log.info("a step")
    log.warning("a problem")

main.__module__ = "stages.example"
run_stage(main)
"""


def stage_output(level: str | None) -> str:
    env = {"LOG_LEVEL": level} if level else {}
    result = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, env={"PATH": "", **env})
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_lines_name_the_stage_and_the_level() -> None:
    assert stage_output(None).splitlines() == ["example: a step", "example: warning: a problem"]


def test_log_level_debug_shows_details_with_the_logger_name() -> None:
    assert "example: debug: [embedft.pairs.example] a detail" in stage_output("debug").splitlines()
    assert stage_output("WARNING").splitlines() == ["example: warning: a problem"]


def test_a_bad_log_level_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"LOG_LEVEL='LOUD': expected DEBUG, INFO, WARNING or ERROR"):
        configure_logging("example", "loud")
    logging.getLogger("embedft").handlers.clear()
