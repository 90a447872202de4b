"""Shared fixtures: a tiny BERT sentence-transformers model built offline, a tiny BEIR dataset, and a template
copy after its first `dvc repro`.

The model and the reproduced template are built once per test session, not once per pytest-xdist worker, in a
folder every worker sees, under a file lock: whoever asks first builds, the others wait and reuse. When the
collected tests need the template, a background process starts building it right after collection, so that it
is ready, or nearly, by the time the first such test runs, while the workers run the other tests.

The reproduced template (`pristine_pipeline`) is never changed; a test that changes anything works on a copy of
it (git history and DVC cache included), which takes a second instead of a full `dvc repro`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TINY_DOCS = [
    ("json.dumps", "Serialize an object to a JSON formatted string. Use indent for pretty printing and sort_keys for stable output."),
    ("json.loads", "Deserialize a str or bytes instance containing a JSON document to a Python object, parsing numbers and strings."),
    ("os.path.join", "Join one or more path components intelligently, inserting the separator between components as needed."),
    ("os.listdir", "Return a list containing the names of the entries in the directory given by path, in arbitrary order."),
    ("re.compile", "Compile a regular expression pattern into a pattern object, which can be used for matching with its methods."),
    ("re.sub", "Return the string obtained by replacing the leftmost non-overlapping occurrences of the pattern in string."),
    ("math.sqrt", "Return the square root of x. The argument must be a non-negative number; complex results need cmath."),
    ("random.shuffle", "Shuffle the sequence x in place using the module's generator. To shuffle an immutable sequence, use sample."),
    ("time.sleep", "Suspend execution of the calling thread for the given number of seconds, which may be a float for precision."),
    ("shutil.copy", "Copy the file src to the file or directory dst, including the permission bits, and return the new path."),
    ("csv.reader", "Return a reader object that iterates over lines in the given csvfile, splitting each into a list of strings."),
    ("zipfile.ZipFile", "Open a ZIP file for reading, writing or appending members, with optional compression of each member stored."),
]
TINY_QUERIES = [
    "convert a value to JSON text", "parse JSON text", "combine path parts", "list files in a folder",
    "build a regex object", "replace matches of a pattern", "square root of a number", "randomly reorder a list",
    "pause the program", "copy a file to another place", "read comma separated values", "open a zip archive",
]


def write_tiny_dataset(folder: Path, with_labels: bool = True) -> Path:
    """Write a 12-document BEIR dataset (one query per document) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for name, text in TINY_DOCS:
            f.write(json.dumps({"_id": name, "title": name, "text": text}) + "\n")
    if with_labels:
        with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
            for number, text in enumerate(TINY_QUERIES):
                f.write(json.dumps({"_id": f"q{number}", "text": text}) + "\n")
        with open(folder / "qrels.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for number, (name, _) in enumerate(TINY_DOCS):
                f.write(f"q{number}\t{name}\t1\n")
    return folder


def build_tiny_model(folder: Path) -> Path:
    """Save a 2-layer, 64-wide BERT sentence-transformers model with the packaged MiniLM tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embedft.encoding.models import resolve_model_path

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=512)
    raw = folder / "raw"
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()], device="cpu")
    model.save(str(folder / "model"))
    return folder / "model"


@pytest.fixture(scope="session", autouse=True)
def machine_cache_dir(tmp_path_factory) -> Iterator[Path]:
    """The machine's cache folder (EMBEDFT_CACHE_DIR) of every test and every process it starts: a session folder, so
    no test reads or fills the user's own cache (~/.cache/embedft)."""
    folder = tmp_path_factory.mktemp("machine_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDFT_CACHE_DIR", str(folder))
        yield folder


def session_folder(tmp_path_factory) -> Path:
    """A folder of this test session that every pytest-xdist worker sees: the parent of the workers' own base
    folders (each worker's base folder is the session's folder itself when xdist is not used)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """``folder``, built by ``build(folder)`` unless a worker already built it, under a lock beside it so that
    a second worker waits for the first instead of building it again. A build that failed is tried afresh."""
    done = folder.with_name(folder.name + ".done")
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def shared_tiny_model(shared: Path) -> Path:
    """The session's tiny model in the shared folder ``shared``, built there once."""
    return built_once(shared / "tiny_model", build_tiny_model) / "model"


def shared_pristine_pipeline(shared: Path) -> Path:
    """The folder of the session's pristine reproduced template in ``shared`` (``project/`` and the `dvc repro`
    output ``stdout.txt``), built there once."""
    from test_pipeline_e2e import make_template_copy, run

    model = shared_tiny_model(shared)

    def reproduce(folder: Path) -> None:
        repo = make_template_copy(folder / "project", model)
        (folder / "stdout.txt").write_text(run(["dvc", "repro"], repo).stdout, encoding="utf-8")

    return built_once(shared / "pristine_pipeline", reproduce)


BACKGROUND_BUILD = "import sys; from pathlib import Path; import conftest; conftest.shared_pristine_pipeline(Path(sys.argv[1]))"
_background_build: subprocess.Popen | None = None


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what will not run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start building the pristine template in the background when a collected test needs it (on one worker only:
    every worker collects the same tests). Its output goes to ``pristine_pipeline.log`` beside it; a failed build
    leaves no ``.done`` marker, so the first test that needs it builds it again and fails with the real error."""
    global _background_build
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0" or config.option.collectonly:
        return
    if not any("pristine_pipeline" in item.fixturenames for item in items):
        return
    shared = session_folder(session.config._tmp_path_factory)  # the tmp_path_factory fixture's object
    shared.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, EMBEDFT_CACHE_DIR=str(shared / "background_machine_cache"))
    with open(shared / "pristine_pipeline.log", "w") as log:  # the child keeps its own copy of the descriptor
        _background_build = subprocess.Popen([sys.executable, "-c", BACKGROUND_BUILD, str(shared)], cwd=Path(__file__).parent,
                                             env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop a background build that is still running (a session cut short), with the `dvc repro` it started."""
    if _background_build is not None and _background_build.poll() is None:
        os.killpg(_background_build.pid, signal.SIGTERM)
        _background_build.wait()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """Path of a tiny sentence-transformers model (64-dim), built once per test session."""
    return shared_tiny_model(session_folder(tmp_path_factory))


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A tiny labelled BEIR dataset folder."""
    return write_tiny_dataset(tmp_path / "dataset")


def snapshot_outputs(repo: Path) -> dict[str, bytes]:
    """The bytes of every file the pipeline wrote (data/, metrics/, reports/, plots/, reviews/, dvc.lock), by
    relative path."""
    files = {"dvc.lock": (repo / "dvc.lock").read_bytes()}
    for folder in ("data", "metrics", "reports", "plots", "reviews"):
        for path in sorted((repo / folder).rglob("*")) if (repo / folder).exists() else []:
            relative = path.relative_to(repo).as_posix()
            if path.is_file() and not relative.startswith(("data/sample/", "data/out_of_domain/")):
                files[relative] = path.read_bytes()
    return files


def skip_dvc_tmp(folder: str, names: list[str]) -> list[str]:
    """Leave out .dvc/tmp (locks, the experiment queue, DVC's updater state): it belongs to the original."""
    return ["tmp"] if Path(folder).name == ".dvc" else []


def copy_project(reproduced: Path, destination: Path) -> Path:
    """A private copy of a reproduced project, with its git history and DVC cache: up to date as it was."""
    shutil.copytree(reproduced, destination, ignore=skip_dvc_tmp, symlinks=True)
    return destination


@pytest.fixture(scope="session")
def pristine_pipeline(tmp_path_factory) -> tuple[Path, str, dict[str, bytes]]:
    """A template copy with the tiny model and data after one `dvc repro`, that run's stdout, and a snapshot of
    the outputs it wrote. Built once for the whole session and never changed: copy it (`copy_project`) to change
    anything, or even to run `dvc` in it."""
    folder = shared_pristine_pipeline(session_folder(tmp_path_factory))
    return folder / "project", (folder / "stdout.txt").read_text(encoding="utf-8"), snapshot_outputs(folder / "project")


@pytest.fixture(scope="session")
def reproduced_pipeline(pristine_pipeline, tmp_path_factory) -> tuple[Path, str, dict[str, bytes]]:
    """This worker's copy of `pristine_pipeline`, shared by the end-to-end and plot tests: they may change params
    and reproduce again, but must leave it reproducible."""
    pristine, stdout, snapshot = pristine_pipeline
    return copy_project(pristine, tmp_path_factory.mktemp("e2e") / "project"), stdout, snapshot
