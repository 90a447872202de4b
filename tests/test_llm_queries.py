"""LLM query generation through the real `openai` client against a real chat-completions server on 127.0.0.1.

Covers normal replies, 429 (Retry-After honoured) and 500 then success, a timeout, an unreadable reply, an error
object or a completion without choices under HTTP 200 (retried, never cached), empty and truncated completions
(cached, counted, retried on request), a run killed half-way and resumed from the cache, an unreachable endpoint, a
refused key and a missing key.
Waits between retries are recorded instead of slept, so the tests do not wait.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from embedft.config import LlmParams, MachineSettings, load_params
from embedft.core.errors import PipelineError
from embedft.pairs.llm_queries import (
    RUN_COUNTS,
    UNUSABLE_COUNTS,
    CacheKey,
    NotACompletion,
    Reply,
    ReplyCache,
    completion_reply,
    llm_queries,
    parse_reply,
    prompt_hash,
    read_reply,
    style_counts,
    user_template,
)
from embedft.testing.chat_server import Action, ChatServer, closed_port_url

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-0123456789abcdef"
PASSAGES = {f"doc{i}": f"module{i}.function\nThe documentation text of function number {i}, long enough to read." for i in range(6)}


@pytest.fixture
def key(monkeypatch) -> str:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    return KEY


@pytest.fixture
def server():
    started = ChatServer()
    yield started
    started.close()


CLIENT_KEYS = ("concurrency", "timeout_seconds", "max_retries", "backoff_initial_seconds", "backoff_max_seconds")
"""How the client talks to the endpoint: machine settings (llm_<key>), not params."""


def settings(url: str, **overrides) -> LlmParams:
    values = dict(enabled=True, base_url=url, model="test-model", api_key_env="TEST_LLM_KEY")
    return LlmParams(**{**values, **{k: v for k, v in overrides.items() if k not in CLIENT_KEYS}})


def machine(**overrides) -> MachineSettings:
    values = dict(concurrency=2, timeout_seconds=5, max_retries=3, backoff_initial_seconds=0.01, backoff_max_seconds=10)
    values.update({k: v for k, v in overrides.items() if k in CLIENT_KEYS})
    return MachineSettings(**{f"llm_{key}": value for key, value in values.items()})


def run(server_url: str, tmp_path: Path, passages=PASSAGES, waits: list | None = None, **overrides):
    recorded = [] if waits is None else waits
    return llm_queries(passages, settings(server_url, **overrides), machine(**overrides), tmp_path / "cache.sqlite",
                       wait=recorded.append, progress=False)


@pytest.mark.slow
def test_normal_replies_are_parsed_counted_and_cached(server, key, tmp_path):
    queries, counts = run(server.url, tmp_path)
    assert sorted(queries) == sorted(PASSAGES)
    assert queries["doc3"] == [("question", "what does module3.function do?"), ("keyword", "module3.function usage"),
                               ("claim", "module3.function exists in the library")]
    assert server.requests == 6 and sorted(server.passages) == sorted(PASSAGES.values())
    assert set(server.authorization) == {f"Bearer {KEY}"}
    assert counts["cache_misses"] == 6 and counts["cache_hits"] == 0 and counts["requests"] == 6 and counts["retries"] == 0
    assert counts["prompt_tokens"] == counts["prompt_tokens_this_run"] == 600
    assert counts["completion_tokens"] == counts["completion_tokens_this_run"] == 120
    assert counts["queries"] == 18 and counts["unparseable_replies"] == 0
    assert KEY.encode() not in (tmp_path / "cache.sqlite").read_bytes()

    again, counts = run(server.url, tmp_path)
    assert again == queries
    assert server.requests == 6  # nothing paid twice
    assert counts["cache_hits"] == 6 and counts["requests"] == 0
    assert counts["prompt_tokens"] == 600 and counts["prompt_tokens_this_run"] == 0


@pytest.mark.slow
def test_rate_limit_honours_retry_after_and_server_error_is_retried(key, tmp_path):
    seen: set[str] = set()

    def behaviour(number: int, passage: str) -> Action:
        first = passage not in seen
        seen.add(passage)
        if passage == PASSAGES["doc1"] and first:
            return Action(status=429, headers={"Retry-After": "7"}, body='{"error": {"message": "slow down"}}')
        if passage == PASSAGES["doc4"] and first:
            return Action(status=500, body='{"error": {"message": "boom"}}')
        return Action()

    server = ChatServer(behaviour)
    waits: list[float] = []
    try:
        queries, counts = run(server.url, tmp_path, waits=waits, concurrency=1)
    finally:
        server.close()
    assert sorted(queries) == sorted(PASSAGES)
    assert counts["rate_limited"] == 1 and counts["server_errors"] == 1 and counts["retries"] == 2
    assert counts["requests"] == 8
    assert sorted(waits) == [0.01, 7.0]  # Retry-After as asked; the 500 waits the first backoff step
    assert server.delivered[PASSAGES["doc1"]] == 1 and server.delivered[PASSAGES["doc4"]] == 1


@pytest.mark.slow
def test_retry_after_longer_than_allowed_stops_with_a_clear_error(key, tmp_path):
    server = ChatServer(lambda n, p: Action(status=429, headers={"Retry-After": "3600"}, body="{}"))
    try:
        with pytest.raises(PipelineError, match=r"asks to wait 3600 s, longer than the machine setting llm_backoff_max_seconds"):
            run(server.url, tmp_path)
    finally:
        server.close()


@pytest.mark.slow
def test_backoff_doubles_up_to_the_maximum(key, tmp_path):
    server = ChatServer(lambda n, p: Action(status=503, body="{}") if n < 4 else Action())
    waits: list[float] = []
    try:
        queries, counts = run(server.url, tmp_path, passages={"doc0": PASSAGES["doc0"]}, waits=waits, max_retries=5,
                              backoff_initial_seconds=1, backoff_max_seconds=5)
    finally:
        server.close()
    assert waits == [1, 2, 4, 5]
    assert counts["server_errors"] == 4 and list(queries) == ["doc0"]


@pytest.mark.slow
def test_timeout_is_retried(key, tmp_path):
    server = ChatServer(lambda number, passage: Action(delay=1.5) if number == 0 else Action())
    try:
        queries, counts = run(server.url, tmp_path, passages={"doc0": PASSAGES["doc0"]}, timeout_seconds=0.3)
    finally:
        server.close()
    assert list(queries) == ["doc0"]
    assert counts["timeouts"] == 1 and counts["retries"] == 1 and server.requests == 2


@pytest.mark.slow
def test_unparseable_reply_skips_that_passage_and_counts_it(key, tmp_path):
    server = ChatServer(lambda n, passage: Action(content="Sorry, I cannot help with that.") if passage == PASSAGES["doc2"] else Action())
    try:
        queries, counts = run(server.url, tmp_path)
        assert "doc2" not in queries and len(queries) == 5
        assert counts["unparseable_replies"] == 1 and counts["queries"] == 15
        # The reply was paid for: it is cached, and a re-run does not ask again.
        _, counts = run(server.url, tmp_path)
        assert counts["unparseable_replies"] == 1 and counts["requests"] == 0 and server.requests == 6
    finally:
        server.close()


@pytest.mark.slow
def test_reply_that_is_not_a_chat_completion_is_a_clear_error(key, tmp_path):
    server = ChatServer(lambda n, p: Action(body="<html>proxy error page</html>"))
    try:
        with pytest.raises(PipelineError, match="not a chat completion .*is base_url an OpenAI-compatible endpoint"):
            run(server.url, tmp_path)
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.parametrize("action", [Action(error="model not loaded"), Action(choices=False)], ids=["error-object", "no-choices"])
def test_http_200_that_is_not_a_completion_is_retried_then_stops_and_is_never_cached(key, tmp_path, action):
    broken = ChatServer(lambda n, p: action)
    waits: list[float] = []
    try:
        with pytest.raises(PipelineError) as raised:
            run(broken.url, tmp_path, passages={"doc0": PASSAGES["doc0"]}, waits=waits, max_retries=2, concurrency=1)
    finally:
        broken.close()
    message = str(raised.value)
    assert broken.url in message and "failed 3 times in a row" in message and "not a chat completion" in message
    assert ("model not loaded" if action.error else "no choice with a message") in message
    assert waits == [0.01, 0.02] and broken.requests == 3  # retried with the back-off, like a 5xx
    assert len(ReplyCache(tmp_path / "cache.sqlite")) == 0  # nothing cached: the repaired endpoint is asked again
    repaired = ChatServer()
    try:
        queries, counts = run(repaired.url, tmp_path, passages={"doc0": PASSAGES["doc0"]})
    finally:
        repaired.close()
    assert list(queries) == ["doc0"] and repaired.requests == 1 and counts["cache_misses"] == 1


@pytest.mark.slow
def test_error_object_then_success_counts_the_errors_as_traffic(key, tmp_path):
    echo = f"model not loaded (key {KEY})"
    server = ChatServer(lambda n, p: Action(error=echo) if n < 2 else Action())
    waits: list[float] = []
    try:
        queries, counts = run(server.url, tmp_path, passages={"doc0": PASSAGES["doc0"]}, waits=waits, concurrency=1)
    finally:
        server.close()
    assert list(queries) == ["doc0"] and counts["error_replies"] == 2 and counts["retries"] == 2 and waits == [0.01, 0.02]
    assert counts["unusable_replies"] == 0 and "error_replies" in RUN_COUNTS
    assert len(ReplyCache(tmp_path / "cache.sqlite")) == 1


@pytest.mark.slow
def test_error_object_message_is_redacted_in_the_stop(key, tmp_path):
    server = ChatServer(lambda n, p: Action(error=f"backend down; key was {KEY}"))
    try:
        with pytest.raises(PipelineError) as raised:
            run(server.url, tmp_path, passages={"doc0": PASSAGES["doc0"]}, max_retries=1, concurrency=1)
    finally:
        server.close()
    assert "backend down; key was ***" in str(raised.value) and KEY not in str(raised.value)


UNUSABLE = {"doc1": Action(content=""), "doc2": Action(content='{"question": ["what does modu', finish_reason="length"),
            "doc3": Action(content="Sorry, I cannot help with that.")}
"""Chat completions that give no query: empty, truncated at max_tokens, unreadable."""


@pytest.mark.slow
def test_unusable_completions_are_cached_counted_and_retried_once_on_request(key, tmp_path):
    repaired = threading.Event()
    server = ChatServer(lambda n, passage: Action() if repaired.is_set() else
                        next((a for d, a in UNUSABLE.items() if PASSAGES[d] == passage), Action()))
    try:
        queries, counts = run(server.url, tmp_path)
        assert sorted(queries) == ["doc0", "doc4", "doc5"] and server.requests == 6
        assert {k: counts[k] for k in UNUSABLE_COUNTS} == {"empty_replies": 1, "truncated_replies": 1, "unparseable_replies": 1}
        assert counts["unusable_replies"] == 3 and counts["error_replies"] == 0
        assert len(ReplyCache(tmp_path / "cache.sqlite")) == 6  # paid for: cached
        _, counts = run(server.url, tmp_path)
        assert counts["unusable_replies"] == 3 and counts["requests"] == 0 and server.requests == 6
        # Still broken: retry_unusable asks once per passage, caches what comes back, and does not loop.
        _, counts = run(server.url, tmp_path, retry_unusable=True)
        assert server.requests == 9 and counts["unusable_retried"] == 3 and counts["unusable_replies"] == 3
        assert counts["cache_hits"] == 3 and counts["cache_misses"] == 0
        repaired.set()
        queries, counts = run(server.url, tmp_path, retry_unusable=True)
        assert sorted(queries) == sorted(PASSAGES) and server.requests == 12 and counts["unusable_replies"] == 0
        _, counts = run(server.url, tmp_path)  # the new replies replaced the unusable ones
        assert counts["requests"] == 0 and counts["unusable_replies"] == 0 and len(ReplyCache(tmp_path / "cache.sqlite")) == 6
    finally:
        server.close()
    assert "unusable_retried" in RUN_COUNTS and not set(UNUSABLE_COUNTS) & set(RUN_COUNTS)


def test_completion_reply_reads_completions_and_refuses_error_bodies():
    usage = {"prompt_tokens": 7, "completion_tokens": 3}
    choice = {"index": 0, "message": {"role": "assistant", "content": "text"}, "finish_reason": "length"}
    assert completion_reply({"object": "chat.completion", "choices": [choice], "usage": usage}) == Reply("text", 7, 3, "length")
    assert completion_reply({"choices": [{"message": {"content": None}}]}) == Reply("", 0, 0, "")
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}
    assert completion_reply(parts).content == "ab"
    refused = {
        '{"object": "error", "message": "model not loaded", "code": 503}': "model not loaded",
        '{"error": {"message": "boom", "code": 500}}': "boom",
        '{"error": "overloaded", "choices": [{"message": {"content": "x"}}]}': "overloaded",
        '{"detail": "Not Found"}': "Not Found",
        '{"id": "c", "object": "chat.completion", "usage": {"prompt_tokens": 1}}': "no choice with a message",
        '{"choices": []}': "no choice with a message",
        '{"choices": [{"index": 0, "message": null}]}': "no choice with a message",
        '[1, 2]': "a JSON list instead of an object",
        'null': "a JSON NoneType instead of an object",
    }
    for body, said in refused.items():
        with pytest.raises(NotACompletion, match=said):
            completion_reply(json.loads(body))


def test_read_reply_says_why_a_completion_gives_no_query():
    counts = {"question": 1}
    assert read_reply(Reply('{"question": ["a b"]}', 1, 1, "length"), counts) == ([("question", "a b")], None)
    assert read_reply(Reply("  ", 1, 0, "stop"), counts) == (None, "empty_replies")
    assert read_reply(Reply("", 1, 512, "length"), counts) == (None, "truncated_replies")
    assert read_reply(Reply('{"question": ["cut', 1, 512, "length"), counts) == (None, "truncated_replies")
    assert read_reply(Reply("no json", 1, 5, "stop"), counts) == (None, "unparseable_replies")


def test_cache_written_before_the_finish_reason_was_kept_still_opens(tmp_path):
    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE replies (model TEXT NOT NULL, prompt_hash TEXT NOT NULL, passage_hash TEXT NOT NULL, "
                    "content TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
                    "created REAL NOT NULL, PRIMARY KEY (model, prompt_hash, passage_hash))")
        old.execute("INSERT INTO replies VALUES ('m', 'p', 'a', 'old reply', 5, 6, 0)")
    old.close()
    cache = ReplyCache(path)
    try:
        assert cache.get(CacheKey("m", "p", "a")) == Reply("old reply", 5, 6, "")
        cache.put(CacheKey("m", "p", "b"), Reply("new", 1, 2, "length"))
        assert cache.get(CacheKey("m", "p", "b")) == Reply("new", 1, 2, "length") and len(cache) == 2
    finally:
        cache.close()
    reopened = ReplyCache(path)
    assert len(reopened) == 2
    reopened.close()


DRIVER = """
import json, sys
from embedft.config import LlmParams, MachineSettings
from embedft.pairs.llm_queries import llm_queries
settings, passages, cache = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
llm_queries(passages, LlmParams(**settings), MachineSettings(llm_concurrency=1), cache, progress=False)
"""


@pytest.mark.slow
def test_killed_run_resumes_from_the_cache_without_paying_twice(key, tmp_path):
    hang = threading.Event()
    server = ChatServer(lambda number, passage: Action(hang=hang) if number >= 3 and not hang.is_set() else Action())
    params = settings(server.url).model_dump()
    env = dict(os.environ, PYTHONPATH=str(TEMPLATE_ROOT))
    process = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(params), json.dumps(PASSAGES), str(tmp_path / "cache.sqlite")],
                               env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while server.requests < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests == 4, process.communicate()[1].decode()[-2000:]
        process.send_signal(signal.SIGKILL)  # the hardest interruption: no handler runs
        process.wait()
        hang.set()  # the 4th request was in flight and never answered
        assert len(ReplyCache(tmp_path / "cache.sqlite")) == 3

        queries, counts = run(server.url, tmp_path)
        assert sorted(queries) == sorted(PASSAGES)
        assert counts["cache_hits"] == 3 and counts["cache_misses"] == 3
        assert all(server.delivered[text] == 1 for text in PASSAGES.values()), server.delivered  # none paid twice
        assert server.requests == 4 + 3
    finally:
        hang.set()
        process.kill() if process.poll() is None else None
        server.close()


@pytest.mark.slow
def test_unreachable_endpoint_fails_after_the_retries(key, tmp_path):
    waits: list[float] = []
    with pytest.raises(PipelineError) as raised:
        run(closed_port_url(), tmp_path, waits=waits, max_retries=2, concurrency=1)
    message = str(raised.value)
    assert "failed 3 times in a row" in message and "could not connect" in message
    assert str(tmp_path / "cache.sqlite") in message and "resumes" in message
    assert KEY not in message
    assert len(waits) == 2


@pytest.mark.slow
def test_endpoint_lost_mid_run_keeps_what_was_done(key, tmp_path):
    server = ChatServer(lambda number, passage: Action(drop=True) if number >= 2 else Action())
    try:
        with pytest.raises(PipelineError, match="could not connect"):
            run(server.url, tmp_path, concurrency=1, max_retries=1)
        assert len(ReplyCache(tmp_path / "cache.sqlite")) == 2
    finally:
        server.close()
    healthy = ChatServer()
    try:
        queries, counts = run(healthy.url, tmp_path)
    finally:
        healthy.close()
    assert len(queries) == 6 and counts["cache_hits"] == 2 and healthy.requests == 4


@pytest.mark.slow
def test_missing_api_key_fails_before_any_request(server, monkeypatch, tmp_path):
    monkeypatch.delenv("TEST_LLM_KEY", raising=False)
    with pytest.raises(PipelineError, match=r"environment variable TEST_LLM_KEY \(named by synthesize.llm.api_key_env\) is not set"):
        run(server.url, tmp_path)
    assert server.requests == 0
    monkeypatch.setenv("TEST_LLM_KEY", "   ")
    with pytest.raises(PipelineError, match="TEST_LLM_KEY"):
        run(server.url, tmp_path)
    assert server.requests == 0


@pytest.mark.slow
def test_refused_key_is_reported_without_the_key(key, tmp_path):
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}})
    server = ChatServer(lambda n, p: Action(status=401, body=echo))
    try:
        with pytest.raises(PipelineError) as raised:
            run(server.url, tmp_path)
    finally:
        server.close()
    assert "refused the API key from TEST_LLM_KEY (HTTP 401)" in str(raised.value)
    assert KEY not in str(raised.value)
    assert server.requests <= 2  # no retries of a refused key (at most one per worker already in flight)


@pytest.mark.slow
def test_bad_request_is_not_retried_and_the_key_is_redacted(key, tmp_path):
    echo = json.dumps({"error": {"message": f"unknown model; key was {KEY}"}})
    server = ChatServer(lambda n, p: Action(status=400, body=echo))
    try:
        with pytest.raises(PipelineError) as raised:
            run(server.url, tmp_path, concurrency=1)
    finally:
        server.close()
    assert "(HTTP 400)" in str(raised.value) and "***" in str(raised.value) and KEY not in str(raised.value)
    assert server.requests == 1


@pytest.mark.slow
def test_endpoint_without_a_key(server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    queries, _ = run(server.url, tmp_path, api_key_env="", passages={"doc0": PASSAGES["doc0"]})
    assert list(queries) == ["doc0"]


@pytest.mark.slow
def test_cache_key_is_model_prompt_and_passage(server, key, tmp_path):
    one = {"doc0": PASSAGES["doc0"]}
    run(server.url, tmp_path, passages=one)
    run(server.url, tmp_path, passages={"renamed": PASSAGES["doc0"]})  # same passage text under another id
    other = ChatServer()
    try:
        run(other.url, tmp_path, passages=one)  # same model elsewhere: cached
    finally:
        other.close()
    assert server.requests == 1
    run(server.url, tmp_path, passages=one, model="another-model")
    run(server.url, tmp_path, passages=one, temperature=0.1)
    run(server.url, tmp_path, passages=one, styles=["question"], queries_per_passage=2)
    run(server.url, tmp_path, passages={"doc0": PASSAGES["doc0"] + " edited"})
    assert server.requests == 5


@pytest.mark.slow
def test_corrupt_cache_file_is_a_clear_error(key, server, tmp_path):
    (tmp_path / "cache.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(PipelineError, match="is not a usable SQLite cache"):
        run(server.url, tmp_path)
    assert server.requests == 0


def test_parse_reply_reads_fenced_and_wrapped_json():
    counts = {"question": 2, "keyword": 1}
    fenced = '```json\n{"question": ["a  b?", "c d?", "e f?"], "keyword": "k w", "claim": ["ignored"]}\n```'
    assert parse_reply(fenced, counts) == [("question", "a b?"), ("question", "c d?"), ("keyword", "k w")]
    assert parse_reply('Here you go: {"question": ["x y"]} Enjoy!', counts) == [("question", "x y")]
    assert parse_reply('{"question": ["", 3, null], "keyword": []}', counts) is None
    assert parse_reply("no json here", counts) is None
    assert parse_reply('["a list", "not an object"]', counts) is None
    assert parse_reply('{"question": ["unterminated"', counts) is None


def test_style_counts_spread_queries_over_styles():
    base = dict(enabled=True)
    assert style_counts(LlmParams(**base, queries_per_passage=3)) == {"question": 1, "keyword": 1, "claim": 1}
    assert style_counts(LlmParams(**base, queries_per_passage=5)) == {"question": 2, "keyword": 2, "claim": 1}
    template = user_template(LlmParams(**base, queries_per_passage=5))
    assert "- 2 question queries" in template and "- 1 claim query" in template and "{passage}" in template
    assert prompt_hash(LlmParams(**base)) == prompt_hash(LlmParams(**base, base_url="http://elsewhere/v1"))


def test_llm_params_validation_never_repeats_a_pasted_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("synthesize:\n  llm:\n    api_key_env: sk-proj-abc123-secret\n")
    with pytest.raises(PipelineError) as raised:
        load_params(path)
    assert "key 'synthesize.llm'" in str(raised.value) and "NAME of an environment variable" in str(raised.value)
    assert "sk-proj-abc123-secret" not in str(raised.value)
    with pytest.raises(ValidationError, match=r"queries_per_passage \(2\) must be at least the number of styles \(3\)"):
        LlmParams(queries_per_passage=2)
    with pytest.raises(ValidationError, match=r"prompt_template must contain \{passage\}"):
        LlmParams(prompt_template="{request} {example}")
    with pytest.raises(ValidationError, match="at most once"):
        LlmParams(styles=["question", "question"])
