"""Stage `ingest`: validate the user's corpus and write it as the pipeline's one canonical ``corpus.jsonl``.

Every later stage reads ``data/corpus/corpus.jsonl`` and nothing else of the corpus, so the dataset is
validated once (ids, fields, encoding) and each stage sees the same documents in the same order.

``data.corpus`` names either a ``corpus.jsonl`` (passed through unchanged: qrels refer to its ids) or a
folder of .md/.html/.rst/.txt documents, which are parsed and cut into passages as the ``ingest`` params say
(stages/documents.py).
"""

from __future__ import annotations

from pathlib import Path

from stages.atomic import atomic_path, write_json_atomic, write_jsonl
from stages.data_io import Document, read_corpus
from stages.documents import read_document_folder
from stages.errors import run_stage
from stages.params import IngestParams, load_params
from stages.paths import CORPUS_FILE, METRICS_DIR, source_corpus_path


def corpus_rows(corpus: dict[str, Document]) -> list[dict[str, str]]:
    """The documents as ``{_id, title, text}`` rows, in corpus order (embeddings are stored in this order)."""
    return [{"_id": doc.id, "title": doc.title, "text": doc.text} for doc in corpus.values()]


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
    source = source_corpus_path(params.data)
    corpus, report = ingest_corpus(source, params.ingest)
    with atomic_path(CORPUS_FILE.parent, is_dir=True) as out:
        write_jsonl(out / CORPUS_FILE.name, corpus_rows(corpus))
    write_json_atomic(METRICS_DIR / "ingest.json", report)
    print(f"ingest: {len(corpus)} documents from {source} -> {CORPUS_FILE}")


if __name__ == "__main__":
    run_stage(main)
