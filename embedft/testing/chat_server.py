"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for the LLM tests.

It answers POST /v1/chat/completions with queries made from the passage in the prompt, and records every
request. A test scripts misbehaviour per request (429, 500, slow replies, unreadable replies, an error object or a
completion without choices under HTTP 200, empty or truncated completions, dropped connections, a hang) through
``behaviour``, and checks what the client really sent.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PASSAGE = re.compile(r'"""\n(?P<passage>.*)\n"""', re.DOTALL)
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


@dataclass
class Action:
    """What the server does with one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content: str | None = None
    """The reply's message text; None = good queries for the passage, '' = an empty completion."""
    finish_reason: str = "stop"
    """The completion's finish_reason: "length" is a reply cut off at max_tokens."""
    choices: bool = True
    """False: a completion object without ``choices`` (an id, a model and usage only)."""
    error: str | None = None
    """Answer with an error object carrying this message (as vLLM does: ``{"object": "error", "message": ...}``)
    instead of a chat completion, under ``status`` (200 unless set)."""
    body: str | None = None
    """A raw response body, instead of a chat completion."""
    delay: float = 0.0
    drop: bool = False
    """Close the connection without answering."""
    hang: threading.Event | None = None
    """Wait for this event before doing anything else (then drop the connection)."""


def good_reply(passage: str) -> str:
    """Three queries about the passage, one per style, as the default prompt asks."""
    name = passage.split("\n", 1)[0]
    return json.dumps({"question": [f"what does {name} do?"], "keyword": [f"{name} usage"], "claim": [f"{name} exists in the library"]})


def passage_of(request: dict) -> str:
    found = PASSAGE.search(request["messages"][-1]["content"])
    return found.group("passage") if found else ""


class ChatServer:
    """Start with ``ChatServer(behaviour)``; ``url`` is the base URL for the client; ``close()`` when done.

    Args:
        behaviour: (request number from 0, passage) -> Action; default: always a good reply.
    """

    def __init__(self, behaviour: Callable[[int, str], Action] | None = None) -> None:
        self.behaviour = behaviour or (lambda number, passage: Action())
        self.passages: list[str] = []
        self.authorization: list[str] = []
        self.delivered: Counter = Counter()
        """Chat completions (with choices) answered under HTTP 200, by passage: the replies paid for."""
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                passage = passage_of(request)
                with server.lock:
                    number = len(server.passages)
                    server.passages.append(passage)
                    server.authorization.append(self.headers.get("Authorization", ""))
                action = server.behaviour(number, passage)
                if action.hang is not None:
                    action.hang.wait()
                    action.drop = True
                time.sleep(action.delay)
                if action.drop or self.path != "/v1/chat/completions":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body, completion = action.body, False
                if body is None and action.error is not None:
                    body = json.dumps({"object": "error", "message": action.error, "type": "ServiceUnavailableError", "param": None,
                                       "code": action.status})
                elif body is None:
                    content = good_reply(passage) if action.content is None else action.content
                    reply = {"id": f"chatcmpl-{number}", "object": "chat.completion", "created": 0, "model": request["model"],
                             "usage": USAGE}
                    if action.choices:
                        reply["choices"] = [{"index": 0, "message": {"role": "assistant", "content": content},
                                             "finish_reason": action.finish_reason}]
                    body, completion = json.dumps(reply), action.choices
                data = body.encode()
                self.send_response(action.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in action.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if action.status == 200 and completion:
                    with server.lock:
                        server.delivered[passage] += 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:  # a client that timed out and left
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def requests(self) -> int:
        with self.lock:
            return len(self.passages)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
