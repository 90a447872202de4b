"""A real Hugging Face Hub look-alike on 127.0.0.1, for the publishing tests.

It answers the endpoints that ``huggingface_hub.HfApi.create_repo`` and ``create_commit`` call (set
``HF_ENDPOINT`` to :attr:`HubServer.url`, and ``HF_HUB_DISABLE_XET=1``: Xet storage is a protocol of its own,
which this server does not speak, so the client uses Git LFS as it does without ``hf_xet``):

- ``POST /api/repos/create``: a new model repository (409, with its URL, when it exists);
- ``POST /api/validate-yaml``: the README's front matter (it must parse as YAML);
- ``POST /api/models/<repo>/preupload/<revision>``: each file's upload mode, ``lfs`` for weights and ONNX
  graphs (by suffix, as the Hub's default ``.gitattributes``) and large files, ``regular`` otherwise;
- ``POST /<repo>.git/info/lfs/objects/batch`` and ``PUT /lfs/<oid>``: Git LFS's batch API, basic transfer;
  the content must hash to its oid;
- ``POST /api/models/<repo>/commit/<revision>``: the commit's ndjson, regular files inline in base64, LFS files
  by oid (which must have been uploaded);
- ``GET /api/models/<repo>``: the repository's files and last commit.

Every API request must carry ``Authorization: Bearer <token>`` (401 otherwise); the upload URLs, like the Hub's
pre-signed ones, need none. The server records each repository's files, its commits and every Authorization
header it saw, so a test checks what really arrived.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".onnx_data", ".h5", ".msgpack")
LFS_MIN_BYTES = 10 * 2**20
"""Files of this size or more go by LFS whatever their name, as on the Hub."""
API_REPO = re.compile(r"^/api/models/(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<action>preupload|commit)/(?P<revision>[^/?]+))?(?:\?.*)?$")
LFS_BATCH = re.compile(r"^/(?P<repo>[\w.-]+/[\w.-]+)\.git/info/lfs/objects/batch$")
LFS_UPLOAD = re.compile(r"^/lfs/(?P<oid>[0-9a-f]{64})$")


@dataclass
class Repository:
    """One model repository: its files (path -> bytes), its commits (message, oid) and visibility."""

    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)
    lfs_paths: set[str] = field(default_factory=set)
    """The files committed as LFS pointers (their content came through the LFS upload)."""


class HubServer:
    """Start with ``HubServer(token)``; ``url`` is the value for ``HF_ENDPOINT``; ``close()`` when done.

    Args:
        token: the one access token it accepts.
    """

    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, Repository] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.authorization: list[str] = []
        """The Authorization header of every API request, in order ('' when there was none)."""
        self.requests: list[str] = []
        """'METHOD path' of every request, in order."""
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def reply(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def authorised(self) -> bool:
                header = self.headers.get("Authorization", "")
                with server.lock:
                    server.authorization.append(header)
                if header != f"Bearer {server.token}":
                    self.reply(401, {"error": "Invalid credentials in Authorization header"})
                    return False
                return True

            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append(f"GET {self.path}")
                found = API_REPO.match(self.path)
                if not found or found["action"]:
                    self.reply(404, {"error": "Not found"})
                    return
                if not self.authorised():
                    return
                repo = server.repos.get(found["repo"])
                if repo is None:
                    self.reply(404, {"error": "Repository not found"})
                    return
                self.reply(200, {"id": found["repo"], "modelId": found["repo"], "private": repo.private,
                                 "sha": repo.commits[-1]["oid"] if repo.commits else "0" * 40,
                                 "siblings": [{"rfilename": path} for path in sorted(repo.files)]})

            def do_PUT(self) -> None:
                with server.lock:
                    server.requests.append(f"PUT {self.path}")
                found = LFS_UPLOAD.match(self.path)
                content = self.body()
                if not found:
                    self.reply(404, {"error": "Not found"})
                elif hashlib.sha256(content).hexdigest() != found["oid"]:
                    self.reply(400, {"error": "content does not match its oid"})
                else:
                    with server.lock:
                        server.lfs_objects[found["oid"]] = content
                    self.reply(200, {})

            def do_POST(self) -> None:
                with server.lock:
                    server.requests.append(f"POST {self.path}")
                content = self.body()
                if not self.authorised():
                    return
                if self.path == "/api/repos/create":
                    self.create(json.loads(content))
                elif self.path == "/api/validate-yaml":
                    self.validate_yaml(json.loads(content)["content"])
                elif found := LFS_BATCH.match(self.path):
                    self.lfs_batch(found["repo"], json.loads(content))
                elif (found := API_REPO.match(self.path)) and found["action"]:
                    if found["repo"] not in server.repos:
                        self.reply(404, {"error": "Repository not found"})
                    elif found["action"] == "preupload":
                        self.preupload(json.loads(content))
                    else:
                        self.commit(found["repo"], found["revision"], content)
                else:
                    self.reply(404, {"error": "Not found"})

            def create(self, request: dict) -> None:
                repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
                url = f"{server.url}/{repo_id}"
                with server.lock:
                    if repo_id in server.repos:
                        self.reply(409, {"error": "You already created this model repo", "url": url})
                        return
                    server.repos[repo_id] = Repository(private=request.get("visibility", "public") == "private")
                self.reply(200, {"url": url, "name": repo_id})

            def validate_yaml(self, readme: str) -> None:
                import yaml

                front = re.match(r"\A---\n(.*?)\n---\n", readme, re.DOTALL)
                try:
                    if front:
                        yaml.safe_load(front.group(1))
                except yaml.YAMLError as error:
                    self.reply(400, {"errors": [{"message": str(error)}], "warnings": []})
                    return
                self.reply(200, {"errors": [], "warnings": []})

            def preupload(self, request: dict) -> None:
                modes = [{"path": item["path"], "shouldIgnore": False, "oid": None,
                          "uploadMode": "lfs" if item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_BYTES
                          else "regular"} for item in request["files"]]
                self.reply(200, {"files": modes, "commitOid": "0" * 40})

            def lfs_batch(self, repo_id: str, request: dict) -> None:
                if repo_id not in server.repos:
                    self.reply(404, {"message": "Repository not found"})
                    return
                objects = [{"oid": item["oid"], "size": item["size"], "authenticated": True,
                            "actions": {"upload": {"href": f"{server.url}/lfs/{item['oid']}", "header": {}}}}
                           for item in request["objects"]]
                self.reply(200, {"transfer": "basic", "objects": objects})

            def commit(self, repo_id: str, revision: str, content: bytes) -> None:
                lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
                header = next(line["value"] for line in lines if line["key"] == "header")
                added: dict[str, bytes] = {}
                lfs_paths: set[str] = set()
                for line in lines:
                    value = line["value"]
                    if line["key"] == "file":
                        added[value["path"]] = base64.b64decode(value["content"])
                    elif line["key"] == "lfsFile":
                        with server.lock:
                            stored = server.lfs_objects.get(value["oid"])
                        if stored is None:
                            self.reply(422, {"error": f"LFS object {value['oid']} of {value['path']} was never uploaded"})
                            return
                        added[value["path"]] = stored
                        lfs_paths.add(value["path"])
                with server.lock:
                    repo = server.repos[repo_id]
                    repo.files.update(added)
                    repo.lfs_paths |= lfs_paths
                    oid = hashlib.sha1(content).hexdigest()
                    repo.commits.append({"oid": oid, "revision": revision, "summary": header["summary"],
                                         "paths": sorted(added)})
                self.reply(200, {"success": True, "commitOid": oid, "commitUrl": f"{server.url}/{repo_id}/commit/{oid}"})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
