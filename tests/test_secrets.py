"""An API key given in the environment never lands anywhere: not in params, dvc.lock, logs, metrics, review
files, the model card, the LLM reply cache or DVC's cache.

A copy of the reproduced template turns the LLM source on and reruns from synthesize on (every stage that reads
the LLM settings, and all after them) against a real chat-completions server on 127.0.0.1; the key is a sentinel
string that no file could contain by chance. Every byte under the project folder and every line `dvc repro`
printed is searched for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import copy_project
from test_pipeline_e2e import run

from embedft.testing.chat_server import ChatServer

pytestmark = pytest.mark.slow  # runs the pipeline with DVC and a chat server

SENTINEL_KEY = "sk-sentinel-7f3a9c1e5b2d4f6a8c0e2b4d6f8a0c1e"


def enable_llm(repo: Path, base_url: str) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["synthesize"]["llm"].update({"enabled": True, "base_url": base_url, "model": "test-model",
                                        "api_key_env": "SENTINEL_LLM_KEY", "max_passages": 6, "cache": ".cache/llm.sqlite"})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with open(repo / "machine.yaml", "a", encoding="utf-8") as machine:
        machine.write("llm_backoff_initial_seconds: 0.01\n")


def files_containing(folder: Path, secret: bytes) -> list[str]:
    return [str(path.relative_to(folder)) for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and secret in path.read_bytes()]


def test_the_api_key_appears_in_no_output_log_or_cache(tmp_path: Path, pristine_pipeline, monkeypatch) -> None:
    repo = copy_project(pristine_pipeline[0], tmp_path / "project")
    server = ChatServer()
    enable_llm(repo, server.url)
    monkeypatch.setenv("SENTINEL_LLM_KEY", SENTINEL_KEY)
    try:
        result = run(["dvc", "repro"], repo)
    finally:
        server.close()
    assert server.requests == 6  # the LLM path really ran, with the key
    assert (repo / ".cache" / "llm.sqlite").is_file() and (repo / "models" / "finetuned" / "README.md").is_file()
    secret = SENTINEL_KEY.encode()
    assert secret not in result.stdout.encode() and secret not in result.stderr.encode()
    assert files_containing(repo, secret) == []
    assert os.environ["SENTINEL_LLM_KEY"] == SENTINEL_KEY  # the key was in the stages' environment all along
