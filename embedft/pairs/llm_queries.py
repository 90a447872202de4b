"""Queries written by an LLM behind any OpenAI-compatible chat-completions endpoint, paid for once per passage.

- The `openai` client talks to the endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...); its own retries are
  off, so that the waits, their counts and the final error are ours and set in params.
- Requests run on a bounded thread pool. Rate limits (429) wait as long as the reply's Retry-After says;
  server errors, timeouts, lost connections and HTTP-200 bodies that are not a chat completion (an error object
  such as ``{"object": "error", "message": "model not loaded"}``, a completion without choices) back off
  exponentially; after ``llm_max_retries`` the stage stops with the endpoint's last error. Concurrency, timeouts
  and retries are machine settings (``llm_*``): they change no reply.
- Every chat completion is stored, the moment it arrives, in an SQLite file keyed by (model, prompt template,
  passage hash); an endpoint error never is. The file is in the machine's cache folder unless params name one, so
  queued and temporary DVC experiment runs (which see only git-tracked files) share it with the workspace. A re-run,
  or a run resumed after an interruption (Ctrl-C, a crash, a kill), reads those replies back and sends requests
  only for the passages still missing.
- Replies are parsed after caching, so a completion that is empty, cut off at ``max_tokens`` or holds no
  readable queries is counted as unusable and its passage skipped (and it is not paid for again, unless
  ``synthesize.llm.retry_unusable`` asks for it once more).
- The API key is read from the environment variable named in params, and nowhere else; it is never
  written or printed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import openai
from tqdm.auto import tqdm

from embedft.config import LlmParams, MachineSettings
from embedft.core import PipelineError, clean_query

logger = logging.getLogger(__name__)

STYLE_DESCRIPTIONS = {
    "question": "questions a user would ask that the passage answers",
    "keyword": "short keyword queries, as typed into a search box",
    "claim": "statements of fact that the passage supports",
}
NO_KEY = "no-key-needed"
"""Sent as the key to endpoints that need none (api_key_env: ''); the client insists on some value."""
CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


@dataclass(frozen=True)
class Reply:
    """A completion as cached: its text, what it cost, and why it ended ("length": cut off at max_tokens; '' in
    replies cached before this was recorded)."""

    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = ""


@dataclass(frozen=True)
class CacheKey:
    """What identifies a reply: the model, the prompt (template and settings), and the passage."""

    model: str
    prompt_hash: str
    passage_hash: str


RUN_COUNTS = ("cache_hits", "cache_misses", "unusable_retried", "requests", "retries", "rate_limited", "server_errors",
              "error_replies", "timeouts", "connection_errors", "prompt_tokens_this_run", "completion_tokens_this_run")
"""Counts of this run's traffic, not of its result (a rerun takes every reply from the cache): they go to the run
log, the others to reports/synthesize.json. ``error_replies``: HTTP-200 bodies that were not a chat completion;
``unusable_retried``: cached unusable replies requested again (``retry_unusable``)."""
UNUSABLE_COUNTS = ("empty_replies", "truncated_replies", "unparseable_replies")
"""Result counts of the chat completions that gave no query: empty, cut off at max_tokens (finish_reason "length")
before any query could be read, and holding no readable queries otherwise; ``unusable_replies`` is their sum."""


@dataclass
class LlmReport:
    """Counts for reports/synthesize.json (and the run log, :data:`RUN_COUNTS`) under ``llm``; safe to update from
    the worker threads."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((
        "passages", "cache_hits", "cache_misses", "unusable_retried", "requests", "retries", "rate_limited",
        "server_errors", "error_replies", "timeouts", "connection_errors", "unusable_replies", *UNUSABLE_COUNTS, "queries", "prompt_tokens",
        "completion_tokens", "prompt_tokens_this_run", "completion_tokens_this_run",
    ), 0))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            self.counts[name] += amount


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def style_counts(settings: LlmParams) -> dict[str, int]:
    """Queries asked for per style: ``queries_per_passage`` spread over the styles in order."""
    share, extra = divmod(settings.queries_per_passage, len(settings.styles))
    return {style: share + (i < extra) for i, style in enumerate(settings.styles)}


def user_template(settings: LlmParams) -> str:
    """The user message with the request and reply form filled in, and ``{passage}`` still open."""
    counts = style_counts(settings)
    request = "\n".join(f"- {n} {style} quer{'y' if n == 1 else 'ies'}: {STYLE_DESCRIPTIONS[style]}" for style, n in counts.items())
    example = json.dumps({style: ["..."] * n for style, n in counts.items()})
    return settings.prompt_template.replace("{request}", request).replace("{example}", example)


def prompt_hash(settings: LlmParams) -> str:
    """Hash of everything but the passage that shapes a reply: the prompts and the sampling settings.

    The endpoint's URL is left out, so the same model served elsewhere reuses the cache.
    """
    prompt = {"system": settings.system_prompt, "user": user_template(settings), "temperature": settings.temperature,
              "max_tokens": settings.max_tokens}
    return sha256(json.dumps(prompt, sort_keys=True))


def messages(passage: str, template: str, settings: LlmParams) -> list[dict[str, str]]:
    """The chat messages for one passage (the passage goes in last, so braces in it are left alone)."""
    return [{"role": "system", "content": settings.system_prompt}, {"role": "user", "content": template.replace("{passage}", passage)}]


def parse_reply(content: str, counts: dict[str, int]) -> list[tuple[str, str]] | None:
    """(style, query) pairs from a reply holding a JSON object of style -> list of queries.

    Code fences and text around the object are tolerated; at most the number asked for is taken per style.
    Returns None when no query can be read.
    """
    text = CODE_FENCE.sub("", content.strip())
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return None
    queries = []
    for style, wanted in counts.items():
        values = data.get(style, [])
        values = [values] if isinstance(values, str) else values if isinstance(values, list) else []
        texts = [clean_query(v) for v in values if isinstance(v, str) and v.strip()]
        queries += [(style, text) for text in texts[:wanted]]
    return queries or None


def read_reply(reply: Reply, counts: dict[str, int]) -> tuple[list[tuple[str, str]] | None, str | None]:
    """A cached reply's (style, query) pairs and None, or None and the :data:`UNUSABLE_COUNTS` name saying why it
    gives none (truncated when it stopped at max_tokens, else empty or unparseable)."""
    parsed = parse_reply(reply.content, counts)
    if parsed is not None:
        return parsed, None
    if reply.finish_reason == "length":
        return None, "truncated_replies"
    return None, "empty_replies" if not reply.content.strip() else "unparseable_replies"


class NotACompletion(Exception):
    """An HTTP-200 body that is not a chat completion; its text is the endpoint's message."""


def endpoint_message(body: object) -> str:
    """What an endpoint's error body says (``message``, ``error.message``, ``detail``), or what it lacks."""
    if isinstance(body, dict):
        error = body.get("error")
        for said in (body.get("message"), error.get("message") if isinstance(error, dict) else error, body.get("detail")):
            if isinstance(said, str) and said.strip():
                return said.strip()
        return f"no choice with a message in {json.dumps(body)}"
    return f"a JSON {type(body).__name__} instead of an object: {json.dumps(body)}"


def completion_reply(body: object) -> Reply:
    """The reply in a chat-completion body (the first choice's message text, the usage and the finish reason).

    Raises:
        NotACompletion: the body is an error object, or has no choice with a message.
    """
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict) or body.get("object") == "error" or body.get("error"):
        raise NotACompletion(endpoint_message(body))
    content = message.get("content")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        content = "".join(part.get("text") or "" for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}

    def tokens(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value >= 0 else 0

    reason = choice.get("finish_reason")
    return Reply(content if isinstance(content, str) else "", tokens("prompt_tokens"), tokens("completion_tokens"),
                 reason if isinstance(reason, str) else "")


CACHE_FILE = "llm_queries.sqlite"
"""The reply cache's name in the machine's cache folder, when ``synthesize.llm.cache`` is ''."""


def reply_cache_path(settings: LlmParams, machine: MachineSettings) -> Path:
    """Where the replies are kept: ``settings.cache`` (``~`` expanded; a relative path is inside the project), or,
    when it is '', :data:`CACHE_FILE` in the machine's cache folder (``cache_dir``).

    The default lies outside the project because DVC copies only git-tracked files into queued and temporary
    experiment runs: a cache inside the (git-ignored) project folder would start empty in each of them. The key
    holds the model, the prompt and the passage's hash, so projects that share the file share only equal replies.
    """
    if settings.cache.strip():
        return Path(settings.cache).expanduser()
    return machine.cache_folder / CACHE_FILE


class ReplyCache:
    """Replies on disk (SQLite), committed one by one so an interrupted run loses nothing it was sent."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connection = sqlite3.connect(self.path)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute(
                "CREATE TABLE IF NOT EXISTS replies (model TEXT NOT NULL, prompt_hash TEXT NOT NULL, "
                "passage_hash TEXT NOT NULL, content TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, "
                "completion_tokens INTEGER NOT NULL, created REAL NOT NULL, finish_reason TEXT NOT NULL DEFAULT '', "
                "PRIMARY KEY (model, prompt_hash, passage_hash))"
            )
            columns = {row[1] for row in self.connection.execute("PRAGMA table_info(replies)")}
            if "finish_reason" not in columns:  # a cache written before the finish reason was kept
                with self.connection:
                    self.connection.execute("ALTER TABLE replies ADD COLUMN finish_reason TEXT NOT NULL DEFAULT ''")
        except sqlite3.DatabaseError as error:
            raise PipelineError(f"synthesize.llm.cache: {self.path} is not a usable SQLite cache ({error}); "
                                "move it away to start a new one") from None

    def get(self, key: CacheKey) -> Reply | None:
        row = self.connection.execute(
            "SELECT content, prompt_tokens, completion_tokens, finish_reason FROM replies "
            "WHERE model = ? AND prompt_hash = ? AND passage_hash = ?",
            (key.model, key.prompt_hash, key.passage_hash),
        ).fetchone()
        return Reply(*row) if row else None

    def put(self, key: CacheKey, reply: Reply) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO replies (model, prompt_hash, passage_hash, content, prompt_tokens, completion_tokens, "
                "created, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key.model, key.prompt_hash, key.passage_hash, reply.content, reply.prompt_tokens, reply.completion_tokens,
                 time.time(), reply.finish_reason),
            )

    def __len__(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self.connection.close()


def api_key_from_env(settings: LlmParams) -> str:
    """The API key from the environment variable ``settings.api_key_env`` names ('' when it names none).

    Raises:
        PipelineError: the variable is unset or empty (raised before any request is made).
    """
    if not settings.api_key_env:
        return ""
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise PipelineError(
            f"synthesize.llm is enabled, but the environment variable {settings.api_key_env} (named by "
            f"synthesize.llm.api_key_env) is not set: export {settings.api_key_env}=<your key>, or set "
            "api_key_env: '' for a local server that needs no key"
        )
    return key


def retry_after_seconds(error: openai.APIStatusError) -> float | None:
    """The wait a rate-limit reply asks for (Retry-After-Ms or Retry-After, in seconds), or None."""
    headers = error.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(float(headers[name]) * scale, 0.0)
        except (KeyError, TypeError, ValueError):
            continue
    return None


class Stopped(Exception):
    """Raised in a worker that was about to send a request after the run was told to stop."""


class LlmQueryGenerator:
    """Sends the requests, with retries, for the passages the cache does not hold.

    Args:
        settings: endpoint, model and prompt.
        machine: concurrency, timeouts and retry policy (the ``llm_*`` machine settings).
        api_key: from :func:`api_key_from_env`; '' for none.
        cache: where replies are kept.
        wait: called with the seconds to wait before a retry; by default a wait that ends early when the run
            stops. Tests pass a recorder so that they run without waiting.
        progress: show a progress bar.
    """

    def __init__(self, settings: LlmParams, machine: MachineSettings, api_key: str, cache: ReplyCache,
                 wait: Callable[[float], object] | None = None, progress: bool = True) -> None:
        self.settings, self.machine, self.api_key, self.cache, self.progress = settings, machine, api_key, cache, progress
        self.report = LlmReport()
        self.stop = threading.Event()
        self.wait = wait or self.stop.wait

    def redact(self, text: str) -> str:
        """Text with the API key blotted out, for messages built from the endpoint's replies."""
        return text.replace(self.api_key, "***") if self.api_key else text

    def backoff(self, attempt: int) -> float:
        return min(self.machine.llm_backoff_initial_seconds * 2**attempt, self.machine.llm_backoff_max_seconds)

    def request(self, client: openai.OpenAI, chat: list[dict[str, str]]) -> Reply:
        """One passage's reply, retrying rate limits, server errors, endpoint errors, timeouts and connection failures."""
        try:
            return self._request(client, chat)
        except PipelineError:
            self.stop.set()  # at once, so this worker's next passage is not sent before the main thread hears
            raise

    def _request(self, client: openai.OpenAI, chat: list[dict[str, str]]) -> Reply:
        settings, machine, attempts, last = self.settings, self.machine, self.machine.llm_max_retries + 1, ""
        for attempt in range(attempts):
            if self.stop.is_set():
                raise Stopped
            delay = self.backoff(attempt)
            self.report.add("requests")
            try:
                # The raw body, read here: the client would take any JSON object for a completion.
                response = client.chat.completions.with_raw_response.create(
                    model=settings.model, messages=chat, temperature=settings.temperature, max_tokens=settings.max_tokens
                )
                try:
                    body = json.loads(response.text)
                except ValueError as error:
                    raise PipelineError(f"synthesize.llm: {settings.base_url} sent a reply that is not a chat completion "
                                        f"({self.redact(str(error))[:200]}: {self.redact(response.text[:100])!r}); "
                                        "is base_url an OpenAI-compatible endpoint?") from None
                return completion_reply(body)
            except NotACompletion as error:
                self.report.add("error_replies")
                last = f"HTTP 200 with a body that is not a chat completion: {self.redact(str(error))[:300]}"
            except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
                raise PipelineError(f"synthesize.llm: {settings.base_url} refused the API key from {settings.api_key_env or '(none)'} "
                                    f"(HTTP {error.status_code})") from None
            except openai.RateLimitError as error:
                self.report.add("rate_limited")
                if getattr(error, "code", None) == "insufficient_quota":
                    raise PipelineError(f"synthesize.llm: {settings.base_url} says the account's quota is used up (HTTP 429, "
                                        "insufficient_quota); retrying will not help") from None
                asked = retry_after_seconds(error)
                if asked is not None and asked > machine.llm_backoff_max_seconds:
                    raise PipelineError(f"synthesize.llm: {settings.base_url} is rate limiting and asks to wait {asked:g} s, longer than "
                                        f"the machine setting llm_backoff_max_seconds ({machine.llm_backoff_max_seconds:g}); "
                                        "try again later") from None
                delay, last = (delay if asked is None else asked), "HTTP 429 (rate limited)"
            except openai.APITimeoutError:
                self.report.add("timeouts")
                last = f"no reply within {machine.llm_timeout_seconds:g} s"
            except openai.APIConnectionError as error:
                self.report.add("connection_errors")
                last = f"could not connect ({self.redact(str(error.__cause__ or error))})"
            except openai.APIStatusError as error:
                if error.status_code < 500 and error.status_code not in (408, 409):
                    raise PipelineError(f"synthesize.llm: {settings.base_url} rejected the request for model '{settings.model}' "
                                        f"(HTTP {error.status_code}): {self.redact(str(error.message))[:300]}") from None
                self.report.add("server_errors")
                last = f"HTTP {error.status_code}"
            except openai.APIResponseValidationError as error:
                raise PipelineError(f"synthesize.llm: {settings.base_url} sent a reply that is not a chat completion "
                                    f"({self.redact(str(error))[:200]}); is base_url an OpenAI-compatible endpoint?") from None
            if attempt + 1 < attempts:
                self.report.add("retries")
                self.wait(delay)
        raise PipelineError(
            f"synthesize.llm: {settings.base_url} failed {attempts} times in a row (last: {last}); the replies received so "
            f"far are kept in {self.cache.path}, so running the stage again resumes where this run stopped"
        )

    def replies(self, passages: dict[str, str]) -> dict[str, Reply]:
        """A reply for every passage: from the cache, or requested and cached the moment it arrives.

        Raises:
            PipelineError: a request failed for good; everything received before is in the cache.
        """
        settings, template, fingerprint = self.settings, user_template(self.settings), prompt_hash(self.settings)
        keys = {doc_id: CacheKey(settings.model, fingerprint, sha256(text)) for doc_id, text in passages.items()}
        found: dict[str, Reply] = {}
        retried = 0
        for doc_id in sorted(passages):
            cached = self.cache.get(keys[doc_id])
            if cached is not None and settings.retry_unusable and read_reply(cached, style_counts(settings))[1] is not None:
                retried += 1  # requested again below; the new reply replaces this one in the cache
            elif cached is not None:
                found[doc_id] = cached
        missing = [doc_id for doc_id in sorted(passages) if doc_id not in found]
        self.report.add("passages", len(passages))
        self.report.add("cache_hits", len(found))
        self.report.add("cache_misses", len(missing) - retried)
        self.report.add("unusable_retried", retried)
        if retried:
            logger.info("requesting again %d cached replies that gave no queries (synthesize.llm.retry_unusable)", retried)
        if missing:
            client = openai.OpenAI(base_url=settings.base_url, api_key=self.api_key or NO_KEY, max_retries=0,
                                   timeout=self.machine.llm_timeout_seconds)
            with tqdm(total=len(passages), initial=len(found), desc="synthesize: LLM queries", unit="passage",
                      disable=not self.progress) as bar:
                self._request_all(client, {d: messages(passages[d], template, settings) for d in missing}, keys, found, bar)
        return found

    def _request_all(self, client: openai.OpenAI, chats: dict[str, list], keys: dict[str, CacheKey],
                     found: dict[str, Reply], bar: tqdm) -> None:
        pool = ThreadPoolExecutor(max_workers=self.machine.llm_concurrency)
        futures: dict[Future, str] = {pool.submit(self.request, client, chat): doc_id for doc_id, chat in chats.items()}

        def keep(future: Future) -> None:
            reply, doc_id = future.result(), futures[future]
            self.cache.put(keys[doc_id], reply)
            found[doc_id] = reply
            self.report.add("prompt_tokens_this_run", reply.prompt_tokens)
            self.report.add("completion_tokens_this_run", reply.completion_tokens)
            bar.update(1)
            bar.set_postfix(tokens=self.report.counts["prompt_tokens_this_run"] + self.report.counts["completion_tokens_this_run"])

        try:
            for future in as_completed(futures):
                keep(future)
        except BaseException as error:
            # Stop sending, let the requests in flight finish, and keep every reply they bring back.
            if isinstance(error, KeyboardInterrupt):
                logger.warning("interrupted; waiting for the requests in flight so their replies are cached")
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            for future, doc_id in futures.items():
                if doc_id not in found and future.done() and not future.cancelled() and future.exception() is None:
                    keep(future)
            if isinstance(error, Stopped):
                # A worker that saw the stop flag may finish before the one whose failure set it: report the failure.
                failures = [f.exception() for f in futures if f.done() and not f.cancelled()
                            and isinstance(f.exception(), PipelineError)]
                if failures:
                    raise failures[0] from None
            raise
        finally:
            pool.shutdown(wait=True)


def llm_queries(passages: dict[str, str], settings: LlmParams, machine: MachineSettings, cache_path: Path | str,
                wait: Callable[[float], object] | None = None,
                progress: bool = True) -> tuple[dict[str, list[tuple[str, str]]], dict[str, int]]:
    """(style, query) lists per passage id, and the counts for the metrics.

    Args:
        passages: passage id -> the text to write queries for.
        settings: the ``synthesize.llm`` params.
        machine: concurrency, timeouts and retries (the ``llm_*`` machine settings).
        cache_path: the SQLite reply cache.
        wait: see :class:`LlmQueryGenerator`.
        progress: show a progress bar.

    Raises:
        PipelineError: the API key's variable is unset (before any request), or the endpoint failed for good.

    The counts hold :data:`UNUSABLE_COUNTS`: the replies (cached, paid for) whose passages gave no queries.
    """
    api_key = api_key_from_env(settings)
    cache = ReplyCache(cache_path)
    try:
        generator = LlmQueryGenerator(settings, machine, api_key, cache, wait, progress)
        replies = generator.replies(passages)
    finally:
        cache.close()
    report, counts = generator.report, style_counts(settings)
    queries: dict[str, list[tuple[str, str]]] = {}
    for doc_id in sorted(replies):
        reply = replies[doc_id]
        report.add("prompt_tokens", reply.prompt_tokens)
        report.add("completion_tokens", reply.completion_tokens)
        parsed, unusable = read_reply(reply, counts)
        if parsed is None:
            report.add(unusable)
            report.add("unusable_replies")
            logger.debug("LLM reply for %s gave no queries (%s)", doc_id, unusable)
            continue
        queries[doc_id] = parsed
        report.add("queries", len(parsed))
    return queries, dict(report.counts)
