"""Stage `ingest`: validate the user's corpus and write it as the pipeline's one canonical ``corpus.jsonl``.

Every later stage reads ``data/corpus/corpus.jsonl`` and nothing else of the corpus, so the dataset is
validated once (ids, fields, encoding) and each stage sees the same documents in the same order.

``data.corpus`` names either a ``corpus.jsonl`` (passed through unchanged: qrels refer to its ids) or a
folder of .md/.html/.rst/.txt documents, which are parsed and cut into passages as the ``ingest`` params say
(embedft/corpus/documents.py).
"""

from __future__ import annotations

from pathlib import Path

from embedft.config import IngestParams, load_params
from embedft.core import Document, atomic_path, read_corpus, run_stage, write_corpus, write_json_atomic
from embedft.core.artifacts import CORPUS_DIR, CORPUS_FILE, INGEST_REPORT
from embedft.corpus import read_document_folder


def ingest_corpus(source: Path, settings: IngestParams) -> tuple[dict[str, Document], dict]:
    """Read the corpus from a corpus.jsonl file or a folder of documents; returns it and the metrics."""
    if source.is_dir():
        corpus, report = read_document_folder(source, settings)
        if report.skipped:
            kinds = ", ".join(f"{ext}: {n}" for ext, n in sorted(report.skipped.items()))
            print(f"ingest: left out {sum(report.skipped.values())} files that are not documents ({kinds})")
        return corpus, report.as_metrics(len(corpus))
    corpus = read_corpus(source)
    return corpus, {"documents": len(corpus)}


def main() -> None:
    params = load_params()
    source = params.data.corpus_path
    corpus, report = ingest_corpus(source, params.ingest)
    with atomic_path(CORPUS_DIR, is_dir=True) as out:
        write_corpus(out / CORPUS_FILE.name, corpus)
    write_json_atomic(INGEST_REPORT, report)
    print(f"ingest: {len(corpus)} documents from {source} -> {CORPUS_FILE}")


if __name__ == "__main__":
    run_stage(main)
