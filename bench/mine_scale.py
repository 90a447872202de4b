"""Hard-negative mining at growing corpus sizes: encode, search and select, each size in a fresh process.

Synthetic documents are drawn, seeded, from the sentences of a BEIR corpus (as bench/scale.py does); each
query is one sentence of a sampled document, whose positive is that document. The template's path is timed
phase by phase: corpus encoding (`embedft.encoding.encode`), exact search (`embedft.mining.search_backend.search`,
memory bounded by the machine setting `search_memory_mb`; its working memory is traced with tracemalloc), the
FAISS Flat backend, and the selection (`embedft.mining.mine_hard_negatives` with the default filters). The
plain sentence-transformers recipe (`util.mine_hard_negatives`, which encodes the corpus itself) runs on the
same data in the same process for the ratio. Growth is fitted on log-log scale (slope 1 = linear) and extrapolated linearly to 1M documents.

Encoding is the same `model.encode` call on both paths, so it dominates both and its ratio only shows the
machine's load. `--machinery-sizes` therefore also compares what mining adds on top of the embeddings, on
identical synthetic unit vectors (no encoding at all): the template's search and selection against
`util.mine_hard_negatives` reading the same vectors from its embedding cache (`cache_folder`), each size and
path in its own process, with wall time and the peak memory above the process's baseline.

Usage (on a shared machine, under nice):
    nice python bench/mine_scale.py --sizes 10000 30000 100000 --queries 2000 --plain-up-to 10000 \
        --machinery-sizes 10000 30000 100000 300000
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scale import sentences_from, synthetic_texts  # the same synthetic documents as bench/scale.py (a sibling script)

from embedft.core import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]

RANGE_MIN, RANGE_MAX, NUM_NEGATIVES, RELATIVE_MARGIN = 10, 50, 1, 0.05


def timed(work):
    """Run ``work()``; return its result, the wall seconds and the CPU seconds of this process (all threads).

    On a machine shared with other jobs the wall time swings with their load; the CPU time of this process
    does much less, so ratios are taken on it.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def synthetic_pairs(docs: list[str], count: int, seed: int) -> list[tuple[str, int]]:
    """(query, positive row): one sentence of each of ``count`` sampled documents."""
    rng = random.Random(seed)
    rows = rng.sample(range(len(docs)), min(count, len(docs)))
    return [(rng.choice([s for s in docs[row].split(". ") if s] or [docs[row]]), row) for row in sorted(rows)]


def measure_one(size: int, n_queries: int, corpus_path: Path, max_seq_length: int, memory_mb: float, plain: bool) -> dict:
    """Mine one synthetic corpus of ``size`` documents with the template's path (and the plain recipe when asked)."""
    import torch

    from embedft.config import MineNegativesParams
    from embedft.core import Document, Pair
    from embedft.encoding import encode, load_model
    from embedft.mining import CorpusIndex, mine_hard_negatives
    from embedft.mining.candidates import candidate_windows
    from embedft.mining.search_backend import search
    from embedft.retrieval import search_block_shape

    sentences = sentences_from(corpus_path)
    docs = synthetic_texts(sentences, size, 2, seed=size)
    pairs = synthetic_pairs(docs, n_queries, seed=size + 1)
    model = load_model("sentence-transformers/all-MiniLM-L6-v2", "cpu", max_seq_length)
    result: dict = {"documents": size, "queries": len(pairs), "max_seq_length": max_seq_length,
                    "torch_threads": torch.get_num_threads(), "search_memory_mb": memory_mb,
                    "rss_after_model_load_mb": peak_rss_mb()}

    encode(model, docs[:128], batch_size=64, progress=False)  # warm-up, so the first timed call is not penalised
    doc_vectors, wall, cpu = timed(lambda: encode(model, docs, batch_size=64, progress=False))
    result.update(encode_s=round(wall, 1), encode_cpu_s=round(cpu, 1), encode_docs_per_s=round(size / wall, 1),
                  encode_docs_per_cpu_s=round(size / cpu, 1))
    anchors = sorted({query for query, _ in pairs})
    anchor_vectors, wall, cpu = timed(lambda: encode(model, anchors, batch_size=64, progress=False))
    result.update(encode_queries_s=round(wall, 2), encode_queries_cpu_s=round(cpu, 2))
    result["embeddings_mb"] = round(doc_vectors.nbytes / 2**20, 1)
    result["rss_after_encode_mb"] = peak_rss_mb()

    (exact_indices, _), wall, cpu = timed(lambda: search(anchor_vectors, doc_vectors, RANGE_MAX, "exact", memory_mb))
    result.update(search_s=round(wall, 3), search_cpu_s=round(cpu, 3), search_queries_per_s=round(len(anchors) / wall, 1))
    result["search_block"] = list(search_block_shape(memory_mb, len(anchors), size))
    tracemalloc.start()
    search(anchor_vectors, doc_vectors, RANGE_MAX, "exact", memory_mb)
    result["search_traced_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    (faiss_indices, _), wall, _ = timed(lambda: search(anchor_vectors, doc_vectors, RANGE_MAX, "faiss"))
    result["faiss_flat_search_s"] = round(wall, 3)
    result["faiss_flat_agreement"] = round(float(np.mean(faiss_indices == exact_indices)), 4)

    def select():
        settings = MineNegativesParams(range_min=RANGE_MIN, range_max=RANGE_MAX, num_negatives=NUM_NEGATIVES,
                                       relative_margin=RELATIVE_MARGIN)
        windows = candidate_windows(anchors, anchor_vectors, doc_vectors, docs, settings, RANGE_MAX, memory_mb)
        corpus = {f"d{i}": Document(f"d{i}", "", text) for i, text in enumerate(docs)}
        training_pairs = [Pair(query, docs[row], f"d{row}", "bench") for query, row in pairs]
        vector_of = dict(zip(anchors, anchor_vectors))
        positive_scores = [float(vector_of[query] @ doc_vectors[row]) for query, row in pairs]
        return mine_hard_negatives(training_pairs, windows, positive_scores, CorpusIndex(corpus), {}, NUM_NEGATIVES, "top",
                                   None, RELATIVE_MARGIN, seed=42)

    mined, wall, cpu = timed(select)
    result.update(select_s=round(wall, 2), select_cpu_s=round(cpu, 2))
    result["pairs_with_negative"] = sum(bool(s.chosen) for s in mined.selections)
    result["template_mine_s"] = round(result["encode_s"] + result["encode_queries_s"] + result["select_s"], 1)
    result["template_mine_cpu_s"] = round(result["encode_cpu_s"] + result["encode_queries_cpu_s"] + result["select_cpu_s"], 1)
    result["peak_rss_mb"] = peak_rss_mb()

    if plain:
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives as plain_mine

        dataset = Dataset.from_dict({"anchor": [q for q, _ in pairs], "positive": [docs[row] for _, row in pairs]})
        plain_result, wall, cpu = timed(lambda: plain_mine(
            dataset, model, corpus=docs, range_min=RANGE_MIN, range_max=RANGE_MAX, relative_margin=RELATIVE_MARGIN,
            num_negatives=NUM_NEGATIVES, sampling_strategy="top", batch_size=64, output_format="n-tuple", verbose=False))
        result.update(plain_mine_s=round(wall, 1), plain_mine_cpu_s=round(cpu, 1),
                      mine_time_ratio_to_plain=round(result["template_mine_s"] / wall, 3),
                      mine_cpu_ratio_to_plain=round(result["template_mine_cpu_s"] / cpu, 3))
        # Not the same negatives: sentence-transformers skips range_min candidates *after* its filters, the
        # template skips the retriever's first range_min ranks; the counts show both keep most pairs.
        result["plain_rows_with_negative"] = len(plain_result)
    return result


def machinery_one(size: int, n_queries: int, path: str, memory_mb: float) -> dict:
    """Search and select negatives for ``n_queries`` synthetic queries over ``size`` synthetic unit vectors.

    Args:
        size: corpus rows.
        n_queries: queries, each a noisy copy of a sampled document (its positive).
        path: ``template`` (embedft's search + mine_hard_negatives) or ``plain`` (sentence-transformers' miner,
            fed the same vectors through its embedding cache).
        memory_mb: the template's search working memory (the machine setting ``search_memory_mb``).
    """
    import hashlib
    import tempfile

    from embedft.config import MineNegativesParams
    from embedft.core import Document, Pair
    from embedft.encoding import load_model
    from embedft.mining import CorpusIndex, mine_hard_negatives
    from embedft.mining.candidates import candidate_windows
    from embedft.retrieval import normalise_rows

    model = load_model("sentence-transformers/all-MiniLM-L6-v2", "cpu", 64)  # both paths hold it: the same baseline
    rng = np.random.default_rng(size)
    # Filled a block at a time, so building the vectors leaves no high-water mark above the baseline to hide
    # the mining's own peak (ru_maxrss only ever rises).
    doc_vectors = np.empty((size, model.get_embedding_dimension()), dtype=np.float32)
    for start in range(0, size, 10_000):
        block = doc_vectors[start : start + 10_000]
        rng.standard_normal(out=block, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    docs = [f"document {i}" for i in range(size)]
    rows = sorted(rng.choice(size, size=min(n_queries, size), replace=False).tolist())
    anchors = [f"query {i}" for i in range(len(rows))]
    anchor_vectors = normalise_rows(doc_vectors[rows] + 0.08 * rng.standard_normal((len(rows), doc_vectors.shape[1]), dtype=np.float32))
    baseline = peak_rss_mb()
    result = {"documents": size, "queries": len(rows), "path": path, "baseline_rss_mb": baseline}
    if path == "template":
        def run():
            settings = MineNegativesParams(range_min=RANGE_MIN, range_max=RANGE_MAX, num_negatives=NUM_NEGATIVES,
                                           relative_margin=RELATIVE_MARGIN)
            windows = candidate_windows(anchors, anchor_vectors, doc_vectors, docs, settings, RANGE_MAX, memory_mb)
            pairs = [Pair(anchor, docs[row], f"d{row}", "bench") for anchor, row in zip(anchors, rows)]
            positive_scores = [float(v @ doc_vectors[row]) for v, row in zip(anchor_vectors, rows)]
            corpus = {f"d{i}": Document(f"d{i}", "", text) for i, text in enumerate(docs)}
            mined = mine_hard_negatives(pairs, windows, positive_scores, CorpusIndex(corpus), {}, NUM_NEGATIVES, "top",
                                        None, RELATIVE_MARGIN, seed=42)
            return sum(bool(s.chosen) for s in mined.selections)
    else:
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives as plain_mine

        cache = Path(tempfile.mkdtemp())
        name = model.model_card_data.base_model or ""
        for kind, texts, vectors in (("query", anchors, anchor_vectors), ("corpus", docs, doc_vectors)):
            digest = hashlib.sha256(repr((name, None, None, texts)).encode()).hexdigest()  # the miner's cache key
            np.save(cache / f"{kind}_embeddings_{digest}.npy", vectors)
        dataset = Dataset.from_dict({"anchor": anchors, "positive": [docs[row] for row in rows]})

        def run():
            return len(plain_mine(dataset, model, corpus=docs, range_min=RANGE_MIN, range_max=RANGE_MAX,
                                  relative_margin=RELATIVE_MARGIN, num_negatives=NUM_NEGATIVES, sampling_strategy="top",
                                  batch_size=64, output_format="n-tuple", cache_folder=str(cache), verbose=False))

    with_negative, wall, cpu = timed(run)
    result.update(seconds=round(wall, 2), cpu_seconds=round(cpu, 2), pairs_with_negative=with_negative,
                  peak_rss_mb=peak_rss_mb(), peak_above_baseline_mb=round(peak_rss_mb() - baseline, 1))
    return result


GROWING = ("encode_s", "encode_cpu_s", "search_s", "search_cpu_s", "faiss_flat_search_s", "select_s", "peak_rss_mb",
           "embeddings_mb")
"""Measures expected to grow with the corpus; search_traced_peak_mb is bounded by search_memory_mb instead."""


def growth(rows: list[dict], key: str) -> dict:
    """How ``key`` grows with corpus size: the least-squares log-log slope (1 = linear) and the least-squares
    line ``a + b * documents`` evaluated at 1M documents (None where it does not grow measurably)."""
    points = [(r["documents"], r[key]) for r in rows if r.get(key)]
    if len(points) < 2:
        return {}
    sizes, values = (np.array(column, dtype=float) for column in zip(*points))
    slope = float(np.polyfit(np.log(sizes), np.log(values), 1)[0])
    per_document, intercept = np.polyfit(sizes, values, 1)
    at_1m = float(intercept + per_document * 1_000_000) if per_document > 0 else None
    return {"loglog_slope": round(slope, 3), "at_1m": None if at_1m is None else round(at_1m, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000],
                        help="corpus sizes to encode, search and select; give none to keep the stored rows")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "bench" / "scifact" / "corpus.jsonl")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--search-memory-mb", type=float, default=256, help="the machine setting search_memory_mb")
    parser.add_argument("--plain-up-to", type=int, default=30_000, help="also run sentence-transformers' miner up to this size")
    parser.add_argument("--machinery-sizes", type=int, nargs="*", default=[],
                        help="also compare search + selection alone, on synthetic vectors, at these sizes")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--machinery-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=["template", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.machinery_one:
        print(json.dumps(machinery_one(args.machinery_one, args.queries, args.path, args.search_memory_mb)))
        return
    if args.one:
        print(json.dumps(measure_one(args.one, args.queries, args.corpus, args.max_seq_length, args.search_memory_mb,
                                     args.one <= args.plain_up_to)))
        return
    from run_pipeline import machine

    out = ROOT / "bench" / "results" / "mine_scale.json"
    report = json.loads(out.read_text()) if out.exists() else {}  # a run replaces only the parts it measures
    report.update(machine=machine(), date=datetime.date.today().isoformat())
    report.setdefault("commands", {})
    if "command" in report:  # results written before the machinery comparison existed
        report["commands"]["encode_search_select"] = report.pop("command")

    def save() -> None:  # after every measurement, so a long run that is cut short keeps what it measured
        report["growth"] = {key: growth(report.get("rows", []), key) for key in GROWING}
        out.write_text(json.dumps(report, indent=2) + "\n")

    if args.sizes:
        command_line = "python bench/mine_scale.py " + " ".join(sys.argv[1:])
        kept = [row for row in report.get("rows", []) if row["documents"] not in args.sizes]  # sizes measured before
        previous = report["commands"].get("encode_search_select")
        report["commands"]["encode_search_select"] = f"{previous}; then {command_line}" if kept and previous else command_line
        rows = report["rows"] = kept
        for size in args.sizes:
            command = [sys.executable, __file__, "--one", str(size), "--queries", str(args.queries), "--corpus", str(args.corpus),
                       "--max-seq-length", str(args.max_seq_length), "--search-memory-mb", str(args.search_memory_mb),
                       "--plain-up-to", str(args.plain_up_to)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            row = json.loads(output.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
            rows.sort(key=lambda measured_row: measured_row["documents"])
            save()
    if args.machinery_sizes:
        report["commands"]["machinery"] = "python bench/mine_scale.py " + " ".join(sys.argv[1:])
        machinery = report["machinery"] = []
        for size in args.machinery_sizes:
            measured = {}
            for path in ("template", "plain"):
                command = [sys.executable, __file__, "--machinery-one", str(size), "--path", path, "--queries",
                           str(args.queries), "--search-memory-mb", str(args.search_memory_mb)]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                measured[path] = json.loads(output.strip().splitlines()[-1])
            row = {"documents": size, "queries": measured["template"]["queries"],
                   **{f"{path}_{key}": value for path, m in measured.items() for key, value in m.items()
                      if key in ("seconds", "cpu_seconds", "peak_above_baseline_mb", "pairs_with_negative")},
                   "time_ratio_to_plain": round(measured["template"]["seconds"] / measured["plain"]["seconds"], 3),
                   "memory_ratio_to_plain": round(measured["template"]["peak_above_baseline_mb"]
                                                  / max(measured["plain"]["peak_above_baseline_mb"], 0.1), 3)}
            machinery.append(row)
            print(json.dumps(row), flush=True)
            save()
    save()
    print(f"-> {out}")


if __name__ == "__main__":
    main()
