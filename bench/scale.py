"""Encode and search at growing corpus sizes: time, throughput and peak memory, each size in a fresh process.

Synthetic documents are made by drawing sentences from a BEIR corpus (seeded), so their length and
vocabulary are realistic. Each size is encoded with the template's `encode` and searched with its chunked
`exact_search`; the plain sentence-transformers call (`model.encode`, `util.semantic_search`) runs on the
same data in the same process for the ratio.

Usage:
    python bench/scale.py --sizes 10000 30000 100000 --queries 1000
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

from embedft.core import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


SENTENCES_PER_DOC = 2


def sentences_from(corpus_path: Path) -> list[str]:
    """Every sentence of a BEIR corpus's texts."""
    found = []
    with open(corpus_path, encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["text"]
            found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20]
    return found


def synthetic_texts(sentences: list[str], count: int, per_text: int, seed: int) -> list[str]:
    """``count`` texts of ``per_text`` random sentences each."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(sentences, k=per_text)) for _ in range(count)]


def measure_one(size: int, n_queries: int, corpus_path: Path, max_seq_length: int, plain: bool) -> dict:
    """Encode ``size`` documents and search ``n_queries`` queries; the plain recipe too when ``plain``."""
    import numpy as np
    import torch
    from sentence_transformers import util

    from embedft.encoding import encode, load_model
    from embedft.retrieval import exact_search

    sentences = sentences_from(corpus_path)
    docs = synthetic_texts(sentences, size, SENTENCES_PER_DOC, seed=size)
    queries = synthetic_texts(sentences, n_queries, 1, seed=size + 1)
    model = load_model("sentence-transformers/all-MiniLM-L6-v2", "cpu", max_seq_length)
    result: dict = {"documents": size, "queries": n_queries, "max_seq_length": max_seq_length, "torch_threads": torch.get_num_threads()}
    rss_loaded = peak_rss_mb()
    started = time.perf_counter()
    doc_vectors = encode(model, docs, batch_size=64, progress=False)
    result["encode_s"] = round(time.perf_counter() - started, 1)
    result["encode_docs_per_s"] = round(size / result["encode_s"], 1)
    query_vectors = encode(model, queries, batch_size=64, progress=False)
    rss_encoded = peak_rss_mb()
    started = time.perf_counter()
    indices, _ = exact_search(query_vectors, doc_vectors, top_k=100, chunk_size=50_000)
    result["search_s"] = round(time.perf_counter() - started, 2)
    result["embeddings_mb"] = round(doc_vectors.nbytes / 2**20, 1)
    result["peak_rss_mb"] = peak_rss_mb()
    result["rss_after_model_load_mb"] = rss_loaded
    result["rss_after_encode_mb"] = rss_encoded
    if plain:
        started = time.perf_counter()
        plain_vectors = model.encode(docs, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
        result["plain_encode_s"] = round(time.perf_counter() - started, 1)
        result["encode_ratio_to_plain"] = round(result["encode_s"] / result["plain_encode_s"], 3)
        started = time.perf_counter()
        hits = util.semantic_search(torch.from_numpy(query_vectors), torch.from_numpy(plain_vectors), top_k=100)
        result["plain_search_s"] = round(time.perf_counter() - started, 2)
        result["search_ratio_to_plain"] = round(result["search_s"] / max(result["plain_search_s"], 1e-3), 3)
        plain_top1 = np.array([h[0]["corpus_id"] for h in hits])
        result["top1_agreement_with_plain"] = round(float(np.mean(plain_top1 == indices[:, 0])), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "bench" / "scifact" / "corpus.jsonl")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--plain-up-to", type=int, default=10_000, help="also run the plain recipe for sizes up to this")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.queries, args.corpus, args.max_seq_length, args.one <= args.plain_up_to)))
        return
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--one", str(size), "--queries", str(args.queries), "--corpus", str(args.corpus),
                   "--max-seq-length", str(args.max_seq_length), "--plain-up-to", str(args.plain_up_to)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    import datetime

    from run_pipeline import machine  # a sibling script: shares the machine description

    out = ROOT / "bench" / "results" / "scale.json"
    out.write_text(json.dumps({"machine": machine(), "date": datetime.date.today().isoformat(),
                               "command": "python bench/scale.py " + " ".join(sys.argv[1:]), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
