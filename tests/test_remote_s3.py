"""DVC remote on S3, end to end, against an S3-compatible server started here on 127.0.0.1 (moto, in server mode).

One clone runs the pipeline and pushes data and models; a fresh `git clone` elsewhere pulls them, is up to date,
reproduces nothing and loads the same model. A push with bad credentials or a wrong endpoint fails with a clear
message and loses nothing local. Credentials are dummy values in environment variables, as the README advises.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
from project_copies import committed_copy
from test_pipeline_e2e import run

pytestmark = pytest.mark.slow  # runs an S3 server and DVC

BUCKET = "team-dvc"
PREFIX = "embedding-finetune"


def folder_digest(folder: Path) -> dict[str, str]:
    """md5 of every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """An S3-compatible server on 127.0.0.1 with an empty bucket, and dummy credentials in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        missing = tmp_path_factory.mktemp("no_aws_config") / "none"
        env.setenv("AWS_CONFIG_FILE", str(missing))  # no user profile may leak into the test
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
        env.setenv("AWS_ACCESS_KEY_ID", "test-key-id")
        env.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
        server.stop()


@pytest.fixture(scope="module")
def pushed(pristine_pipeline, s3_endpoint: str, tmp_path_factory) -> Path:
    """The reproduced project with an S3 default remote (committed: no secret in it), pushed."""
    project = committed_copy(pristine_pipeline[0], tmp_path_factory.mktemp("s3_origin") / "project")
    run(["dvc", "remote", "add", "--default", "storage", f"s3://{BUCKET}/{PREFIX}"], project)
    run(["dvc", "remote", "modify", "storage", "endpointurl", s3_endpoint], project)
    run(["git", "commit", "-q", "-am", "S3 remote"], project)
    result = run(["dvc", "push"], project)
    assert " pushed" in result.stdout, result.stdout
    return project


def bucket_keys(endpoint: str) -> list[str]:
    import boto3

    pages = boto3.client("s3", endpoint_url=endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def pulled(pushed: Path, tmp_path_factory) -> Path:
    """A fresh `git clone` of the project somewhere else, after `dvc pull`."""
    clone = tmp_path_factory.mktemp("s3_teammate") / "project"
    run(["git", "clone", "-q", str(pushed), str(clone)], clone.parent)
    assert not (clone / "models" / "finetuned").exists()
    run(["dvc", "pull"], clone)
    return clone


def test_push_stores_data_and_models_in_the_bucket(pushed: Path, s3_endpoint: str) -> None:
    keys = bucket_keys(s3_endpoint)
    assert keys and all(key.startswith(f"{PREFIX}/files/md5/") for key in keys)
    assert "secret" not in (pushed / ".dvc" / "config").read_text() and "test-key-id" not in (pushed / ".dvc" / "config").read_text()
    assert "Everything is up to date." in run(["dvc", "push"], pushed).stdout


def test_fresh_clone_pulls_everything_and_reproduces_nothing(pushed: Path, pulled: Path) -> None:
    assert "Data and pipelines are up to date." in run(["dvc", "status"], pulled).stdout
    assert "Running stage" not in run(["dvc", "repro"], pulled).stdout
    for output in ("models/finetuned", "data/negatives", "data/embeddings/finetuned", "data/split"):
        assert folder_digest(pulled / output) == folder_digest(pushed / output), output


def test_pulled_model_gives_the_same_embeddings(pushed: Path, pulled: Path) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["serialize an object to JSON", "open a zip archive"]
    original = SentenceTransformer(str(pushed / "models" / "finetuned"), device="cpu").encode(texts)
    copy = SentenceTransformer(str(pulled / "models" / "finetuned"), device="cpu").encode(texts)
    np.testing.assert_array_equal(copy, original)


@pytest.fixture
def unpushed_change(pulled: Path, request):
    """A new DVC-tracked file in the clone, not yet pushed; the clone's workspace and cache before the push."""
    (pulled / "notes").mkdir(exist_ok=True)
    (pulled / "notes" / "review.txt").write_text(f"results reviewed on the GPU box ({request.node.name})\n")
    run(["dvc", "add", "notes/review.txt"], pulled)
    before = {path: folder_digest(pulled / path) for path in ("models/finetuned", "notes", ".dvc/cache")}
    yield before
    run(["dvc", "remote", "modify", "--local", "--unset", "storage", "endpointurl"], pulled, check=False)


def assert_nothing_lost(clone: Path, before: dict[str, dict[str, str]]) -> None:
    for path, digest in before.items():
        assert folder_digest(clone / path) == digest, path
    assert "Data and pipelines are up to date." in run(["dvc", "status"], clone).stdout


def test_push_with_bad_credentials_fails_clearly_and_loses_nothing(pulled: Path, unpushed_change, s3_endpoint: str) -> None:
    from moto.core.authorization import enable_iam_authentication

    with enable_iam_authentication():  # the server now checks keys: ours are unknown to it
        result = run(["dvc", "push"], pulled, check=False)
    assert result.returncode != 0
    assert "An error occurred (403) when calling the HeadObject operation: Forbidden" in result.stderr
    assert_nothing_lost(pulled, unpushed_change)
    assert not any("review" in key for key in bucket_keys(s3_endpoint))
    assert "1 file pushed" in run(["dvc", "push"], pulled).stdout  # same command, valid credentials: it goes


def test_push_to_a_wrong_endpoint_fails_clearly_and_loses_nothing(pulled: Path, unpushed_change) -> None:
    wrong = f"http://127.0.0.1:{closed_port()}"
    run(["dvc", "remote", "modify", "--local", "storage", "endpointurl", wrong], pulled)
    result = run(["dvc", "push"], pulled, check=False)
    assert result.returncode != 0
    assert f'Could not connect to the endpoint URL: "{wrong}/{BUCKET}/{PREFIX}/' in result.stderr
    assert_nothing_lost(pulled, unpushed_change)
