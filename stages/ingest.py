"""Stage `ingest`: validate the user's corpus and write it as the pipeline's one canonical ``corpus.jsonl``.

Every later stage reads ``data/corpus/corpus.jsonl`` and nothing else of the corpus, so the dataset is
validated once (ids, fields, encoding) and each stage sees the same documents in the same order.
"""

from __future__ import annotations

from stages.atomic import atomic_path, write_jsonl
from stages.data_io import Document, read_corpus
from stages.errors import run_stage
from stages.params import load_params
from stages.paths import CORPUS_FILE, source_corpus_path


def corpus_rows(corpus: dict[str, Document]) -> list[dict[str, str]]:
    """The documents as ``{_id, title, text}`` rows, in corpus order (embeddings are stored in this order)."""
    return [{"_id": doc.id, "title": doc.title, "text": doc.text} for doc in corpus.values()]


def main() -> None:
    params = load_params()
    corpus = read_corpus(source_corpus_path(params.data))
    with atomic_path(CORPUS_FILE.parent, is_dir=True) as out:
        write_jsonl(out / CORPUS_FILE.name, corpus_rows(corpus))
    print(f"ingest: {len(corpus)} documents from {source_corpus_path(params.data)} -> {CORPUS_FILE}")


if __name__ == "__main__":
    run_stage(main)
