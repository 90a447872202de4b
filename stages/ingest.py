"""Stage `ingest`: validate the user's corpus and write it as the pipeline's one canonical ``corpus.jsonl``.

Every later stage reads ``data/corpus/corpus.jsonl`` and nothing else of the corpus, so the dataset is
validated once (ids, fields, encoding) and each stage sees the same documents in the same order.

``data.corpus`` names either a ``corpus.jsonl`` (passed through unchanged: qrels refer to its ids) or a
folder of .md/.mdx/.html/.rst/.txt documents, which are parsed, cleaned of markup and cut into passages as the
``ingest`` params say (embedft/corpus/documents.py), each within ``base.model``'s window. The report counts the
passages that hold markup (tags, link targets, fences, ...): for a folder before and after cleaning, for a
corpus.jsonl as it is.
"""

from __future__ import annotations

from pathlib import Path

from embedft.config import BaseParams, IngestParams, load_machine, load_params
from embedft.core import DataFileError, Document, atomic_path, read_corpus, run_stage, write_corpus, write_json_atomic
from embedft.core.artifacts import CORPUS_DIR, CORPUS_FILE, INGEST_REPORT
from embedft.corpus import PassageLimit, length_outliers, markup_counts, read_document_folder
from embedft.encoding import load_model_with, text_token_counter


def passage_limit(settings: IngestParams, base: BaseParams) -> PassageLimit:
    """The caps of a passage: ``max_chunk_words`` and ``max_chunk_tokens`` of ``base.model``'s tokenizer (the model
    is loaded on the CPU, only when there is a token cap)."""
    tokens = settings.token_cap(base.max_seq_length)
    if not tokens:
        return PassageLimit(max_words=settings.max_chunk_words)
    model = load_model_with(base, load_machine(), device="cpu")
    return PassageLimit(settings.max_chunk_words, tokens, text_token_counter(model, base.document_prompt))


def ingest_corpus(source: Path, settings: IngestParams, dataset_dir: Path | None = None,
                  base: BaseParams | None = None) -> tuple[dict[str, Document], dict]:
    """Read the corpus from a corpus.jsonl file or a folder of documents; returns it and the metrics.

    Documents far longer than the rest are named in a warning and, when there are any, under ``length_outliers``
    in the metrics. ``dataset_dir`` (``data.dir``): documents that links bring in from outside it are logged.
    ``base``: the model whose window a folder's passages fit (``ingest.max_chunk_tokens``); None: the word cap alone.
    """
    if source.is_dir():
        limit = passage_limit(settings, base) if base is not None else None
        corpus, folder_report = read_document_folder(source, settings, dataset_dir, limit)
        if folder_report.skipped:
            kinds = ", ".join(f"{ext}: {n}" for ext, n in sorted(folder_report.skipped.items()))
            print(f"ingest: left out {sum(folder_report.skipped.values())} files that are not documents ({kinds})")
        report = folder_report.as_metrics(len(corpus))
    elif not source.exists() and not source.is_symlink():
        raise DataFileError(source, "file not found (data.corpus names a corpus.jsonl file, or a folder of documents, inside data.dir)")
    else:
        corpus = read_corpus(source)
        report = {"documents": len(corpus), "markup": markup_counts(document.full_text for document in corpus.values())}
    outliers = length_outliers(corpus)
    if outliers.documents:
        print(f"ingest: warning: {outliers.describe()} (listed in {INGEST_REPORT})")
        report["length_outliers"] = outliers.as_report()
    return corpus, report


def main() -> None:
    params = load_params()
    source = params.data.corpus_path
    corpus, report = ingest_corpus(source, params.ingest, Path(params.data.dir), params.base)
    with atomic_path(CORPUS_DIR, is_dir=True) as out:
        write_corpus(out / CORPUS_FILE.name, corpus)
    write_json_atomic(INGEST_REPORT, report)
    markup = report["markup"].get("after_cleaning", report["markup"])
    print(f"ingest: {len(corpus)} documents from {source} -> {CORPUS_FILE}; {markup['with_markup']} hold markup "
          f"(tags, link targets, fences, ...; see {INGEST_REPORT})")


if __name__ == "__main__":
    run_stage(main)
