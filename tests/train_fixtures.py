"""Tiny training inputs shared by the train tests: mined rows, scored rows, a dev set and a stage project folder."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import TINY_DOCS, TINY_QUERIES

DOC_TEXTS = [f"{title}\n{text}" for title, text in TINY_DOCS]


def mined_rows(count: int = 24, negatives: tuple[int, ...] = (0, 1)) -> list[dict]:
    """``count`` rows over the 12 tiny documents, in blocks of 12: block b has ``negatives[b % len(negatives)]``
    negatives per row. Each block's positives are the 12 distinct documents, so the NO_DUPLICATES sampler can
    fill batches within a group."""
    rows = []
    for i in range(count):
        row = {"anchor": f"{TINY_QUERIES[i % 12]} ({i})", "positive": DOC_TEXTS[i % 12], "source": ("labelled", "title")[i % 2]}
        for k in range(negatives[(i // 12) % len(negatives)]):
            row[f"negative_{k + 1}"] = f"An unrelated passage, number {i}-{k}, about nothing in particular."
        rows.append(row)
    return rows


def scored_rows(count: int = 12) -> list[dict]:
    """Rows in scored.jsonl's format: two scored negatives each (the first one harder), cross-encoder scores."""
    return [{"anchor": TINY_QUERIES[i % 12], "positive": DOC_TEXTS[i % 12], "source": "labelled",
             "negatives": [f"A near miss for query {i}.", f"An unrelated passage for query {i}."], "positive_score": 0.9,
             "negative_scores": [0.4, 0.1], "score_source": "cross_encoder"} for i in range(count)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_base_embeddings(root: Path, model_path: Path, max_seq_length: int = 32) -> None:
    """``data/embeddings/base`` as `embed_corpus` writes it, with ``model_path`` as the base model (the dev pool's)."""
    from embedft.config import BaseParams
    from embedft.core import read_corpus
    from embedft.encoding import corpus_embeddings, load_model, save_embeddings

    base = BaseParams(model=str(model_path), max_seq_length=max_seq_length)
    model = load_model(str(model_path), "cpu", max_seq_length)
    corpus = read_corpus(root / "data" / "corpus" / "corpus.jsonl")
    save_embeddings(root / "data" / "embeddings" / "base", corpus_embeddings(model, base.model, corpus, base))


def write_project(root: Path, model_path: Path, train: dict | None = None, rows: list[dict] | None = None,
                  dev_queries: int = 4, negatives_dir: str = "data/negatives", machine: dict | None = None) -> Path:
    """A folder laid out like the template after `mine_negatives`: corpus, dev split, negatives and params.yaml."""
    write_jsonl(root / "data" / "corpus" / "corpus.jsonl", [{"_id": t, "title": t, "text": x} for t, x in TINY_DOCS])
    write_base_embeddings(root, model_path)
    dev = root / "data" / "split" / "dev"
    write_jsonl(dev / "queries.jsonl", [{"_id": f"q{i}", "text": TINY_QUERIES[i]} for i in range(dev_queries)])
    (dev / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{TINY_DOCS[i][0]}\t1\n" for i in range(dev_queries)))
    write_jsonl(root / negatives_dir / "negatives.jsonl", mined_rows() if rows is None else rows)
    settings = {"batch_size": 4, "learning_rate": 1e-3, "max_seq_length": 32, "matryoshka_dims": [64, 32],
                "eval_steps": 3, "logging_steps": 1, **(train or {})}
    params = {"base": {"model": str(model_path), "seed": 0, "max_seq_length": 32}, "train": settings}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (root / "machine.yaml").write_text(yaml.safe_dump({"device": "cpu", "encode_batch_size": 16, **(machine or {})}), encoding="utf-8")
    return root
