"""The sharded corpus store: the same bytes as one in-memory encode, float16 on request, and a SIGKILLed encode
that resumes at the first missing shard and ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedft.config import BaseParams, ExportParams, MachineSettings
from embedft.core import Document, PipelineError
from embedft.encoding import corpus_embeddings, load_embeddings, load_model, save_embeddings, store_corpus_embeddings
from embedft.encoding.corpus_store import work_folder
from embedft.encoding.shards import SHARD_FILE, assemble, length_order, rows_per_shard

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
WORDS = "embedding shard corpus vector resume kill store memory search query passage model token batch".split()


def make_corpus(count: int, seed: int = 0) -> dict[str, Document]:
    """Documents of 1 to 60 words (many of the same length in characters, so ties in the length order are exercised)."""
    rng = random.Random(seed)
    return {f"d{i}": Document(id=f"d{i}", title=rng.choice(["", "A title"]), text=" ".join(rng.choices(WORDS, k=rng.randint(1, 60))))
            for i in range(count)}


def encode_store(model_path: Path, corpus: dict[str, Document], folder: Path, work: Path, **settings) -> None:
    model = load_model(str(model_path), "cpu", 64)
    base = BaseParams(model=str(model_path), max_seq_length=64, embedding_dtype=settings.pop("embedding_dtype", "float32"))
    machine = MachineSettings(**{"encode_batch_size": 8, "encode_shard_size": 20, **settings})
    store_corpus_embeddings(folder, model, str(model_path), list(corpus), [d.full_text for d in corpus.values()], base, machine,
                            ExportParams(), work_root=work)


def test_rows_per_shard_is_a_whole_number_of_batches() -> None:
    assert [rows_per_shard(size, 8) for size in (1, 8, 9, 20, 24)] == [8, 8, 16, 24, 24]


def test_length_order_is_sentence_transformers_order() -> None:
    texts = ["bb", "a", "ccc", "dd", "", "ccc"]
    assert list(length_order(texts)) == list(np.argsort([-len(t) for t in texts]))
    assert [len(texts[i]) for i in length_order(texts)] == [3, 3, 2, 2, 1, 0]


def test_sharded_store_is_byte_identical_to_one_in_memory_encode(tiny_model_path: Path, tmp_path: Path) -> None:
    corpus = make_corpus(101)
    model = load_model(str(tiny_model_path), "cpu", 64)
    base = BaseParams(model=str(tiny_model_path), max_seq_length=64)
    save_embeddings(tmp_path / "whole", corpus_embeddings(model, str(tiny_model_path), corpus, base, batch_size=8))
    encode_store(tiny_model_path, corpus, tmp_path / "sharded", tmp_path / "work")  # 5 shards of 24 rows, 3 of 8 texts each
    for name in ("vectors.npy", "doc_ids.json", "info.json"):
        assert (tmp_path / "sharded" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert list((tmp_path / "work").iterdir()) == []  # the finished encode's shards are gone
    stored = load_embeddings(tmp_path / "sharded", corpus, memory_map=True)
    assert isinstance(stored.vectors, np.memmap) and stored.vectors.shape == (101, 64)


def test_float16_store_holds_the_float32_vectors_rounded(tiny_model_path: Path, tmp_path: Path) -> None:
    corpus = make_corpus(30)
    encode_store(tiny_model_path, corpus, tmp_path / "f32", tmp_path / "work")
    encode_store(tiny_model_path, corpus, tmp_path / "f16", tmp_path / "work", embedding_dtype="float16")
    full, half = load_embeddings(tmp_path / "f32").vectors, load_embeddings(tmp_path / "f16").vectors
    assert half.dtype == np.float16 and full.dtype == np.float32
    np.testing.assert_array_equal(half, full.astype(np.float16))


def test_a_shard_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    np.save(work / SHARD_FILE.format(0), np.zeros((3, 64), np.float32))
    with pytest.raises(PipelineError, match=r"shard-000000.npy: a shard of shape \(3, 64\), expected \(24, 64\)"):
        assemble(tmp_path / "store", work, np.arange(30), 64, "float32", 24, [f"d{i}" for i in range(30)], {})
    assert not (tmp_path / "store").exists()


CHILD = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, os.environ["TEMPLATE_ROOT"])
sys.path.insert(0, os.environ["TESTS_DIR"])
from test_embedding_store import encode_store, make_corpus
args = json.loads(os.environ["CHILD_ARGS"])
encode_store(Path(args["model"]), make_corpus(args["count"]), Path(args["folder"]), Path(args["work"]))
"""

PAUSE_AT_SHARD = '''
import os, time
_replace = os.replace
def _paused_replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == os.environ["PAUSE_AT"]:
        with open(os.environ["PAUSE_MARKER"], "w") as marker:
            marker.write(os.fspath(dst))
        time.sleep(600)
    return _replace(src, dst, *args, **kwargs)
os.replace = _paused_replace
'''


def test_a_killed_encode_resumes_at_the_first_missing_shard(tiny_model_path: Path, tmp_path: Path, caplog) -> None:
    count, folder, work = 101, tmp_path / "resumed", tmp_path / "work"
    hook, marker = tmp_path / "hook", tmp_path / "paused"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_AT_SHARD, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(hook), PAUSE_MARKER=str(marker), PAUSE_AT=SHARD_FILE.format(3),
               TEMPLATE_ROOT=str(TEMPLATE_ROOT), TESTS_DIR=str(Path(__file__).parent), HF_HUB_OFFLINE="1",
               CHILD_ARGS=json.dumps({"model": str(tiny_model_path), "count": count, "folder": str(folder), "work": str(work)}))
    process = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the encode never reached shard 3:\n{process.communicate()}")
        time.sleep(0.05)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    (key,) = list(work.iterdir())
    assert sorted(p.name for p in key.iterdir() if not p.name.startswith(".")) == [SHARD_FILE.format(i) for i in range(3)]
    assert not folder.exists()  # no partial store
    written = {p.name: p.stat().st_mtime_ns for p in key.iterdir() if not p.name.startswith(".")}

    caplog.set_level(logging.INFO, logger="embedft.encoding.shards")
    encode_store(tiny_model_path, make_corpus(count), folder, work)
    assert "3 of 5 shards already written" in caplog.text
    assert [m for m in caplog.messages if m.startswith("encoded shard")] == ["encoded shard 4 of 5 (24 rows)",
                                                                           "encoded shard 5 of 5 (5 rows)"]
    encode_store(tiny_model_path, make_corpus(count), tmp_path / "uninterrupted", tmp_path / "work_uninterrupted")
    for name in ("vectors.npy", "doc_ids.json", "info.json"):
        assert (folder / name).read_bytes() == (tmp_path / "uninterrupted" / name).read_bytes(), name
    assert not key.exists() and written  # the resumed encode finished and removed its shards


def test_existing_shards_are_used_unless_resume_is_off(tiny_model_path: Path, tmp_path: Path) -> None:
    corpus, work = make_corpus(30), tmp_path / "work"
    encode_store(tiny_model_path, corpus, tmp_path / "clean", tmp_path / "clean_work")
    model = load_model(str(tiny_model_path), "cpu", 64)
    texts = [d.full_text for d in corpus.values()]
    folder = work_folder(work, model, str(tiny_model_path), list(corpus), texts, BaseParams(model=str(tiny_model_path), max_seq_length=64),
                         MachineSettings(encode_batch_size=8, encode_shard_size=20))
    folder.mkdir(parents=True)
    np.save(folder / SHARD_FILE.format(0), np.zeros((24, 64), np.float32))  # a planted shard 0
    encode_store(tiny_model_path, corpus, tmp_path / "resumed", work)
    vectors, clean = load_embeddings(tmp_path / "resumed").vectors, load_embeddings(tmp_path / "clean").vectors
    first = length_order(texts)[:24]
    assert not vectors[first].any() and np.array_equal(np.delete(vectors, first, 0), np.delete(clean, first, 0))
    folder.mkdir(parents=True)
    np.save(folder / SHARD_FILE.format(0), np.zeros((24, 64), np.float32))
    encode_store(tiny_model_path, corpus, tmp_path / "afresh", work, resume=False)
    assert (tmp_path / "afresh" / "vectors.npy").read_bytes() == (tmp_path / "clean" / "vectors.npy").read_bytes()
