"""The dataset files in BEIR layout, and the pipeline's own copies of them: the canonical corpus (`ingest`) and
the train/dev/test splits (`split`). One reader and one writer per file; every reader reports a problem with
the file and line it is on, as a :class:`DataFileError`."""

from __future__ import annotations

from pathlib import Path

from embedft.core.errors import DataFileError
from embedft.core.jsonl import read_jsonl, read_lines, write_jsonl
from embedft.core.rows import Document, Qrels

QUERIES_FILE = "queries.jsonl"
QRELS_FILE = "qrels.tsv"


def _unique_by_id(path: Path, rows: list[tuple[int, dict]]) -> dict[int, dict]:
    first_line: dict[str, int] = {}
    for number, row in rows:
        if row["_id"] in first_line:
            raise DataFileError(path, f"duplicate _id '{row['_id']}' (first on line {first_line[row['_id']]})", number)
        first_line[row["_id"]] = number
    return dict(rows)


def read_corpus(path: Path) -> dict[str, Document]:
    """Read ``corpus.jsonl``: rows of ``{_id, text, title?}``, ids unique."""
    rows = _unique_by_id(path, read_jsonl(path, required=("_id", "text"), optional=("title",)))
    return {
        row["_id"]: Document(id=row["_id"], title=(row.get("title") or "").strip(), text=row["text"].strip())
        for row in rows.values()
    }


def write_corpus(path: Path, corpus: dict[str, Document]) -> None:
    """Write the documents as ``{_id, title, text}`` rows in corpus order (embeddings are stored in this order;
    call inside an atomic path)."""
    write_jsonl(path, [{"_id": doc.id, "title": doc.title, "text": doc.text} for doc in corpus.values()])


def read_queries(path: Path) -> dict[str, str]:
    """Read ``queries.jsonl``: rows of ``{_id, text}``, ids unique."""
    rows = _unique_by_id(path, read_jsonl(path, required=("_id", "text")))
    return {row["_id"]: row["text"].strip() for row in rows.values()}


def read_qrels(path: Path, query_ids: set[str] | dict | None = None, doc_ids: set[str] | dict | None = None) -> Qrels:
    """Read a qrels TSV (``query-id, corpus-id, score``; a header row is optional).

    Args:
        path: the file.
        query_ids: when given, a row naming any other query is an error.
        doc_ids: when given, a row naming any other document is an error.
    """
    qrels: Qrels = {}
    for number, line in read_lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if number == 1 and cells[0].strip().lower() in {"query-id", "query_id", "qid", "query"}:
            continue
        if len(cells) == 4:  # TREC layout: qid, iteration, docid, relevance
            cells = [cells[0], cells[2], cells[3]]
        if len(cells) != 3:
            raise DataFileError(path, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cells)}", number)
        query_id, doc_id, score_text = (cell.strip() for cell in cells)
        try:
            value = float(score_text)
        except ValueError:
            value = float("nan")
        if not value.is_integer():  # "2.0" is a grade some exports write; "0.5" or "high" is not
            raise DataFileError(path, f"score '{score_text}' is not an integer relevance grade", number)
        score = int(value)
        if query_ids is not None and query_id not in query_ids:
            raise DataFileError(path, f"unknown query id '{query_id}'", number)
        if doc_ids is not None and doc_id not in doc_ids:
            raise DataFileError(path, f"unknown corpus id '{doc_id}'", number)
        qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def write_qrels(path: Path, qrels: Qrels) -> None:
    """Write qrels as a sorted TSV with a header (call inside an atomic path)."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id in sorted(qrels):
            for doc_id in sorted(qrels[query_id]):
                handle.write(f"{query_id}\t{doc_id}\t{qrels[query_id][doc_id]}\n")


def relevant(qrels: Qrels) -> Qrels:
    """Only the judgements with relevance above zero, dropping queries left with none."""
    kept = {q: {d: s for d, s in docs.items() if s > 0} for q, docs in qrels.items()}
    return {q: docs for q, docs in kept.items() if docs}


def read_split(folder: Path) -> tuple[dict[str, str], Qrels]:
    """Read one split written by :func:`write_split`: (queries, qrels). An empty split gives two empty dicts."""
    queries_path = folder / QUERIES_FILE
    if not queries_path.exists() or not any(line.strip() for _, line in read_lines(queries_path)):
        return {}, {}
    queries = read_queries(queries_path)
    return queries, read_qrels(folder / QRELS_FILE, queries)


def write_split(folder: Path, queries: dict[str, str], qrels: Qrels) -> None:
    """Write one split: ``queries.jsonl`` (sorted by id) and ``qrels.tsv`` into ``folder`` (created; call inside
    an atomic path). ``queries`` may hold queries without judgements."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / QUERIES_FILE, [{"_id": q, "text": queries[q]} for q in sorted(queries)])
    write_qrels(folder / QRELS_FILE, qrels)
