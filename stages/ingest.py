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
from embedft.core import DataFileError, Document, atomic_path, read_corpus, run_stage, write_corpus, write_json_atomic
from embedft.core.artifacts import CORPUS_DIR, CORPUS_FILE, INGEST_REPORT
from embedft.corpus import length_outliers, read_document_folder


def ingest_corpus(source: Path, settings: IngestParams, dataset_dir: Path | None = None) -> tuple[dict[str, Document], dict]:
    """Read the corpus from a corpus.jsonl file or a folder of documents; returns it and the metrics.

    Documents far longer than the rest are named in a warning and, when there are any, under ``length_outliers``
    in the metrics. ``dataset_dir`` (``data.dir``): documents that links bring in from outside it are logged.
    """
    if source.is_dir():
        corpus, folder_report = read_document_folder(source, settings, dataset_dir)
        if folder_report.skipped:
            kinds = ", ".join(f"{ext}: {n}" for ext, n in sorted(folder_report.skipped.items()))
            print(f"ingest: left out {sum(folder_report.skipped.values())} files that are not documents ({kinds})")
        report = folder_report.as_metrics(len(corpus))
    elif not source.exists() and not source.is_symlink():
        raise DataFileError(source, "file not found (data.corpus names a corpus.jsonl file, or a folder of documents, inside data.dir)")
    else:
        corpus = read_corpus(source)
        report = {"documents": len(corpus)}
    outliers = length_outliers(corpus)
    if outliers.documents:
        print(f"ingest: warning: {outliers.describe()} (listed in {INGEST_REPORT})")
        report["length_outliers"] = outliers.as_report()
    return corpus, report


def main() -> None:
    params = load_params()
    source = params.data.corpus_path
    corpus, report = ingest_corpus(source, params.ingest, Path(params.data.dir))
    with atomic_path(CORPUS_DIR, is_dir=True) as out:
        write_corpus(out / CORPUS_FILE.name, corpus)
    write_json_atomic(INGEST_REPORT, report)
    print(f"ingest: {len(corpus)} documents from {source} -> {CORPUS_FILE}")


if __name__ == "__main__":
    run_stage(main)
