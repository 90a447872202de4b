"""The LLM reply cache outlives DVC experiments: queued (`dvc exp run --queue` + `dvc queue start`) and temporary
(`--temp`) runs see only git-tracked files, so a cache inside the project would start empty in each of them. The
default cache lies in the machine's cache folder (EMBEDFT_CACHE_DIR here), so those runs take every reply the
workspace run paid for and send the chat server on 127.0.0.1 no request."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import copy_project
from test_experiments import wait_for_queue
from test_pipeline_e2e import run, set_params

from embedft.testing.chat_server import ChatServer

pytestmark = pytest.mark.slow  # runs DVC experiments against a real chat server

PASSAGES = 5


def cached_replies(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM replies").fetchone()[0]


def test_queued_and_temporary_experiments_reuse_the_cached_replies(tmp_path: Path, pristine_pipeline) -> None:
    server = ChatServer()
    cache_dir = tmp_path / "user-cache"
    environment = {"EMBEDFT_CACHE_DIR": str(cache_dir)}
    project = copy_project(pristine_pipeline[0], tmp_path / "project")
    set_params(project, {"synthesize": {"llm": {"enabled": True, "base_url": server.url, "model": "test-model", "api_key_env": "",
                                                "max_passages": PASSAGES, "cache": ""}}})
    try:
        run(["dvc", "repro", "synthesize"], project, environment=environment)
        assert server.requests == PASSAGES and cached_replies(cache_dir / "llm_queries.sqlite") == PASSAGES
        assert not (project / ".cache").exists()
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-q", "-m", "synthesized with the LLM"], project)

        queued = run(["dvc", "exp", "run", "--queue", "-S", "synthesize.review.kept=10", "synthesize"], project,
                     environment=environment).stdout
        names = [line.split("'")[1] for line in queued.splitlines() if line.startswith("Queued experiment")]
        assert len(names) == 1, queued
        run(["dvc", "queue", "start", "-j", "1"], project, environment=environment)
        try:
            states = wait_for_queue(project, names)
        finally:
            run(["dvc", "queue", "stop"], project, check=False)
        assert states[names[0]] == "Success", run(["dvc", "queue", "logs", names[0]], project, check=False).stdout[-3000:]
        assert server.requests == PASSAGES  # the queued run asked for nothing: every reply came from the cache

        temporary = run(["dvc", "exp", "run", "--temp", "-S", "synthesize.quality.min_anchor_chars=4", "synthesize"], project,
                        environment=environment)
        assert "Running stage 'synthesize'" in temporary.stdout
        assert server.requests == PASSAGES
    finally:
        server.close()
    assert cached_replies(cache_dir / "llm_queries.sqlite") == PASSAGES
    # Both experiments made their pairs from the cached replies: 3 queries for each of the 5 passages.
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    revs = [rev["rev"] for row in shown if row["rev"] != "workspace" for e in row["experiments"] or [] for rev in e["revs"]]
    assert len(revs) == 2, shown
    for rev in revs:
        report = json.loads(run(["git", "show", f"{rev}:reports/synthesize.json"], project).stdout)
        assert report["llm"]["passages"] == PASSAGES and report["llm"]["queries"] == 3 * PASSAGES, report["llm"]
