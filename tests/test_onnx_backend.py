"""encode_backend onnx: the model exported once into the cache (keyed by its files' hash), checked against PyTorch,
and a corpus store within export.tolerance of the PyTorch one; clear errors without onnxruntime or beyond tolerance."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from test_embedding_store import encode_store, make_corpus

from embedft.core import PipelineError
from embedft.encoding import ONNX_FILE, load_embeddings
from embedft.encoding.shards import model_fingerprint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def test_onnx_store_matches_the_torch_store_and_reuses_its_export(tiny_model_path: Path, tmp_path: Path) -> None:
    corpus, cache = make_corpus(60), tmp_path / "cache"
    encode_store(tiny_model_path, corpus, tmp_path / "torch", tmp_path / "work")
    encode_store(tiny_model_path, corpus, tmp_path / "onnx", tmp_path / "work", encode_backend="onnx", cache_dir=str(cache))
    exported = cache / "onnx" / model_fingerprint(tiny_model_path) / ONNX_FILE
    assert exported.is_file()
    torch_vectors, onnx_vectors = load_embeddings(tmp_path / "torch").vectors, load_embeddings(tmp_path / "onnx", corpus).vectors
    assert onnx_vectors.shape == torch_vectors.shape
    assert float(np.abs(onnx_vectors - torch_vectors).max()) <= 1e-4  # export.tolerance's default
    written = exported.stat().st_mtime_ns
    encode_store(tiny_model_path, corpus, tmp_path / "again", tmp_path / "work", encode_backend="onnx", cache_dir=str(cache))
    assert exported.stat().st_mtime_ns == written  # exported once, then reused
    assert (tmp_path / "again" / "vectors.npy").read_bytes() == (tmp_path / "onnx" / "vectors.npy").read_bytes()


def test_the_window_is_base_max_seq_length_not_the_saved_models(tiny_model_path: Path, tmp_path: Path) -> None:
    from embedft.config import BaseParams, ExportParams, MachineSettings
    from embedft.encoding import load_model, store_corpus_embeddings

    corpus = make_corpus(20)
    texts = [d.full_text for d in corpus.values()]
    stores = {}
    for backend in ("torch", "onnx"):
        model = load_model(str(tiny_model_path), "cpu", 16)  # the saved model keeps 64 tokens
        stores[backend] = store_corpus_embeddings(tmp_path / backend, model, str(tiny_model_path), list(corpus), texts,
                                                  BaseParams(model=str(tiny_model_path), max_seq_length=16),
                                                  MachineSettings(encode_backend=backend, cache_dir=str(tmp_path / "cache")),
                                                  ExportParams(), work_root=tmp_path / "work").vectors
    assert float(np.abs(stores["torch"] - stores["onnx"]).max()) <= 1e-4


def test_beyond_tolerance_stops_naming_the_key(tiny_model_path: Path, tmp_path: Path) -> None:
    from embedft.config import BaseParams, ExportParams, MachineSettings
    from embedft.encoding import load_model, store_corpus_embeddings

    corpus = make_corpus(10)
    with pytest.raises(PipelineError, match=r"params.yaml: export.tolerance: with encode_backend 'onnx' the embeddings of .* differ"):
        store_corpus_embeddings(tmp_path / "store", load_model(str(tiny_model_path), "cpu", 64), str(tiny_model_path), list(corpus),
                                [d.full_text for d in corpus.values()], BaseParams(model=str(tiny_model_path), max_seq_length=64),
                                MachineSettings(encode_backend="onnx", cache_dir=str(tmp_path / "cache")),
                                ExportParams(tolerance=1e-12), work_root=tmp_path / "work")
    assert not (tmp_path / "store").exists()


def test_without_onnxruntime_the_error_names_the_extra(tiny_model_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` meets where it is not installed
    with pytest.raises(PipelineError, match=r"encode_backend is 'onnx', which needs the 'onnxruntime' package: "
                       r"pip install 'embedding-finetune-template\[onnx\]'"):
        encode_store(tiny_model_path, make_corpus(5), tmp_path / "store", tmp_path / "work", encode_backend="onnx",
                     cache_dir=str(tmp_path / "cache"))
