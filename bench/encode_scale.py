"""Corpus encoding at growing sizes: peak memory and throughput of the template's sharded store
(`store_corpus_embeddings`, torch backend) against one plain `SentenceTransformer.encode` call, each (size, path)
in a fresh process so each peak is its own.

Synthetic documents are drawn from a BEIR corpus's sentences (seeded), as in bench/scale.py. `--width` builds a
1-layer BERT of that width with MiniLM's tokenizer instead of loading MiniLM, to measure how memory grows with the
corpus at sizes a shared CPU cannot encode with the full model (the model's own activations are per batch, so
they add a constant, measured separately with MiniLM at the smallest size).

Usage:
    python bench/encode_scale.py --sizes 10000 100000 1000000 --width 384
    python bench/encode_scale.py --sizes 10000 --paths store plain      # MiniLM
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's embedft, whatever the environment has installed

from scale import sentences_from, synthetic_texts  # noqa: E402  (a sibling script)

from embedft.core import peak_rss_mb  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def build_model(width: int, folder: Path) -> str:
    """A 1-layer BERT of ``width`` with the packaged MiniLM tokenizer, mean pooling and normalisation."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embedft.encoding import resolve_model_path

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MINILM))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=width, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=width, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder / "raw")
    tokenizer.save_pretrained(folder / "raw")
    transformer = Transformer(str(folder / "raw"), max_seq_length=64)
    SentenceTransformer(modules=[transformer, Pooling(width, "mean"), Normalize()], device="cpu").save(str(folder / "model"))
    return str(folder / "model")


def measure_one(size: int, path: str, model_name: str, corpus_path: Path, max_seq_length: int, shard_size: int) -> dict:
    """Encode ``size`` synthetic documents by ``path`` ('store' or 'plain') and report memory and speed."""
    import numpy as np

    from embedft.config import BaseParams, ExportParams, MachineSettings
    from embedft.encoding import load_model, store_corpus_embeddings

    texts = synthetic_texts(sentences_from(corpus_path), size, 2, seed=size)
    model = load_model(model_name, "cpu", max_seq_length)
    result: dict = {"documents": size, "path": path, "rss_after_model_load_mb": peak_rss_mb()}
    started = time.perf_counter()
    (ROOT / "bench" / "work").mkdir(parents=True, exist_ok=True)  # git-ignored
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "work") as work:
        if path == "store":
            machine = MachineSettings(encode_batch_size=64, encode_shard_size=shard_size)
            stored = store_corpus_embeddings(Path(work) / "store", model, model_name, [f"d{i}" for i in range(size)], texts,
                                             BaseParams(model=model_name, max_seq_length=max_seq_length), machine, ExportParams(),
                                             work_root=Path(work) / "shards")
            nbytes = stored.vectors.nbytes
        else:
            vectors = np.asarray(model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                              show_progress_bar=False), dtype=np.float32)
            nbytes = vectors.nbytes
        result["encode_s"] = round(time.perf_counter() - started, 1)
    result["docs_per_s"] = round(size / result["encode_s"], 1)
    result["embeddings_mb"] = round(nbytes / 2**20, 1)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--paths", nargs="+", default=["store", "plain"], choices=["store", "plain"])
    parser.add_argument("--width", type=int, help="a 1-layer BERT of this width instead of MiniLM")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "bench" / "scifact" / "corpus.jsonl")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=16_384)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encode_scale.json")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        size, path, model = args.one
        print(json.dumps(measure_one(int(size), path, model, args.corpus, args.max_seq_length, args.shard_size)))
        return
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(args.width, Path(folder)) if args.width else MINILM
        rows = []
        for size in args.sizes:
            for path in args.paths:
                command = [sys.executable, __file__, "--one", str(size), path, model, "--corpus", str(args.corpus),
                           "--max-seq-length", str(args.max_seq_length), "--shard-size", str(args.shard_size)]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(output.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    from run_pipeline import machine  # a sibling script: shares the machine description

    args.out.write_text(json.dumps({"machine": machine(), "date": datetime.date.today().isoformat(),
                                    "model": f"1-layer BERT, width {args.width}" if args.width else MINILM,
                                    "command": "python bench/encode_scale.py " + " ".join(sys.argv[1:]), "rows": rows},
                                   indent=2) + "\n")


if __name__ == "__main__":
    main()
