"""CPU encode speed: the PyTorch model (`SentenceTransformer.encode`) against its ONNX export run by onnxruntime
(`embedft.export.OnnxSentenceEncoder`), in one process, on the same texts, threads and batch size.

The model is exported with the template's own exporter (embedft/export/onnx_export.py) into bench/work/. Documents
(long, truncated at the model's max_seq_length) and queries (short) are timed separately; the two engines
alternate over several rounds and each keeps its median, so a change in machine load hits both alike. The
embeddings of both are compared too.

Usage:
    python bench/onnx_speed.py                      # the default base model, all-MiniLM-L6-v2
    python bench/onnx_speed.py --model models/finetuned --texts 1024 --rounds 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(encode, texts: list[str]) -> float:
    """Seconds one call of ``encode(texts)`` takes."""
    started = time.perf_counter()
    encode(texts)
    return time.perf_counter() - started


def measure(model_name: str, texts: dict[str, list[str]], batch_size: int, rounds: int, threads: int) -> dict:
    import numpy as np
    import torch

    from embedft.encoding import load_model
    from embedft.export import OnnxSentenceEncoder, copy_model_files, export_onnx

    torch.set_num_threads(threads)
    model = load_model(model_name, device="cpu")
    folder = ROOT / "bench" / "work" / "onnx_speed" / "model-onnx"
    copy_model_files(Path(model_path(model_name)), folder)
    export_onnx(model, folder, opset=17)
    onnx = OnnxSentenceEncoder(folder, threads=threads)
    engines = {
        "pytorch": lambda batch: model.encode(batch, batch_size=batch_size, show_progress_bar=False),
        "onnx": lambda batch: onnx.encode(batch, batch_size=batch_size),
    }
    rows = {}
    for kind, inputs in texts.items():
        for encode in engines.values():
            encode(inputs[:batch_size])  # warm-up: first-call allocations, lazy initialisation
        seconds: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(rounds):
            for name, encode in engines.items():
                seconds[name].append(timed(encode, inputs))
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        difference = float(np.abs(engines["pytorch"](inputs) - engines["onnx"](inputs)).max())
        rows[kind] = {
            "texts": len(inputs),
            "pytorch_texts_per_s": round(len(inputs) / medians["pytorch"], 1),
            "onnx_texts_per_s": round(len(inputs) / medians["onnx"], 1),
            "speedup_onnx_vs_pytorch": round(medians["pytorch"] / medians["onnx"], 3),
            "pytorch_seconds": [round(s, 3) for s in seconds["pytorch"]],
            "onnx_seconds": [round(s, 3) for s in seconds["onnx"]],
            "max_abs_diff": difference,
        }
        print(json.dumps({kind: rows[kind]}))
    return {"model": model_name, "max_seq_length": model.max_seq_length, "batch_size": batch_size, "threads": threads,
            "rounds": rounds, "onnx_megabytes": round((folder / "onnx" / "model.onnx").stat().st_size / 2**20, 1), **rows}


def model_path(name: str) -> str:
    """The folder a model name resolves to (the packaged copy for the default model)."""
    from embedft.encoding import resolve_model_path

    return resolve_model_path(name)


def sample_texts(dataset: Path, count: int) -> dict[str, list[str]]:
    """``count`` documents (title and text) and ``count`` queries of a BEIR dataset, in file order."""
    from embedft.core import read_corpus, read_queries

    documents = [document.full_text for document in read_corpus(dataset / "corpus.jsonl").values()][:count]
    queries = list(read_queries(dataset / "queries.jsonl").values())[:count]
    return {"documents": documents, "queries": queries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--dataset", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and onnxruntime threads")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "onnx_speed.json")
    args = parser.parse_args()
    from run_pipeline import machine

    load_before = os.getloadavg()[0]
    result = measure(args.model, sample_texts(args.dataset, args.texts), args.batch_size, args.rounds, args.threads)
    out = args.out
    out.write_text(json.dumps({
        "machine": machine(), "date": datetime.date.today().isoformat(),
        "command": "python bench/onnx_speed.py " + " ".join(sys.argv[1:]),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        **result,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
