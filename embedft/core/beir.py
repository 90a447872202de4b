"""The dataset files in BEIR layout, and the pipeline's own copies of them: the canonical corpus (`ingest`) and
the train/dev/test splits (`split`). One reader and one writer per file; every reader reports a problem with
the file and line it is on, as a :class:`DataFileError`."""

from __future__ import annotations

import logging
from pathlib import Path

from embedft.core.errors import DataFileError
from embedft.core.jsonl import read_jsonl, read_lines, write_jsonl
from embedft.core.rows import Document, Qrels

QUERIES_FILE = "queries.jsonl"
QRELS_FILE = "qrels.tsv"

logger = logging.getLogger(__name__)


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


QUERY_COLUMNS = {"query-id", "query_id", "queryid", "qid", "query"}
DOC_COLUMNS = {"corpus-id", "corpus_id", "corpusid", "doc-id", "doc_id", "docid", "docno", "doc", "document", "document-id",
               "document_id"}
GRADE_COLUMNS = {"score", "relevance", "rel", "grade", "label", "judgement", "judgment"}
ITERATION_COLUMNS = {"iteration", "iter", "q0"}
BEIR = (0, 1, 2)
"""Column positions of (query, document, grade) in BEIR layout: ``query-id, corpus-id, score``."""
TREC = (0, 2, 3)
"""Column positions of (query, document, grade) in TREC layout: ``qid, iteration, docid, relevance``."""
EXPECTED_HEADERS = ("'query-id<TAB>corpus-id<TAB>score' (BEIR; columns after these are ignored) or "
                    "'qid<TAB>iteration<TAB>docid<TAB>relevance' (TREC)")
GRADE_RANGE = (-(2**31), 2**31 - 1)
"""Grades the metrics can hold (trec_eval, under ir-measures, stores them as 32-bit integers)."""


def parse_grade(text: str) -> int | None:
    """A relevance grade from its cell ("2" or "2.0"); None when the cell is not a whole number in :data:`GRADE_RANGE`."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not value.is_integer() or not GRADE_RANGE[0] <= value <= GRADE_RANGE[1]:
        return None
    return int(value)


def grade_problem(text: str) -> str:
    """Why a cell is not a relevance grade (for a cell :func:`parse_grade` refused)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value.is_integer():
        return f"score '{text}' is outside the range of a relevance grade ({GRADE_RANGE[0]}..{GRADE_RANGE[1]})"
    return f"score '{text}' is not an integer relevance grade"


def _is_header(cells: list[str]) -> bool:
    """True for a first line that names columns rather than holding a judgement."""
    names = [cell.strip().lower() for cell in cells]
    if names[0] in QUERY_COLUMNS:
        return True
    known = QUERY_COLUMNS | DOC_COLUMNS | GRADE_COLUMNS | ITERATION_COLUMNS
    return any(name in known for name in names) and all(parse_grade(cell) is None for cell in cells[2:4])


def _header_layout(path: Path, number: int, cells: list[str]) -> tuple[int, int, int]:
    """The column positions a header row names, or an error naming the headers this reader knows."""
    names = [cell.strip().lower() for cell in cells]
    if (len(names) >= 4 and names[0] in QUERY_COLUMNS and names[1] in ITERATION_COLUMNS and names[2] in DOC_COLUMNS
            and names[3] in GRADE_COLUMNS):
        return TREC
    if len(names) >= 3 and names[0] in QUERY_COLUMNS and names[1] in DOC_COLUMNS and names[2] in GRADE_COLUMNS:
        if len(names) > 3:
            logger.info("%s: reading query-id, corpus-id and score; ignoring the column(s) %s", path,
                        ", ".join(repr(cell.strip()) for cell in cells[3:]))
        return BEIR
    raise DataFileError(path, f"unknown header {chr(9).join(cell.strip() for cell in cells)!r}: expected {EXPECTED_HEADERS}", number)


def _reading_fits(rows: list[tuple[int, list[str]]], layout: tuple[int, int, int], doc_ids) -> bool:
    _, doc, grade = layout
    return all(parse_grade(cells[grade]) is not None and (doc_ids is None or cells[doc].strip() in doc_ids)
               for _, cells in rows)


def _headerless_four_columns(path: Path, rows: list[tuple[int, list[str]]], doc_ids) -> tuple[int, int, int]:
    """How to read the 4-column rows of a file without a header: TREC, the usual layout, unless the rows also read
    as BEIR with an extra column (the third cell a grade, and the second a known document when ``doc_ids`` are
    given): then the file is ambiguous, an error naming both readings."""
    four = [(number, cells) for number, cells in rows if len(cells) == 4]
    if not four or not _reading_fits(four, BEIR, doc_ids):
        return TREC
    if _reading_fits(four, TREC, doc_ids):
        number, cells = four[0]
        raise DataFileError(
            path, f"4 columns and no header: line {number} reads as TREC (qid, iteration, docid, relevance: document "
            f"'{cells[2].strip()}', grade {cells[3].strip()}) or as BEIR with one more column (query-id, corpus-id, score: "
            f"document '{cells[1].strip()}', grade {cells[2].strip()}). Add a header line saying which: "
            f"{EXPECTED_HEADERS}")
    return TREC


def _trec_hint(cells: list[str], layout: tuple[int, int, int], header: list[str] | None) -> str:
    """A hint for a 4-column row read as TREC (no header) whose cells fit BEIR better."""
    if header is None and len(cells) == 4 and layout == TREC and parse_grade(cells[2]) is not None:
        return (" (read as TREC: qid, iteration, docid, relevance, the layout of 4 columns without a header; if the file "
                "is query-id, corpus-id, score and another column, add the header line "
                "'query-id<TAB>corpus-id<TAB>score<TAB>...')")
    return ""


def _unknown_doc(doc_id: str, doc_ids) -> str:
    if f"{doc_id}#1" in doc_ids:
        return (f"unknown corpus id '{doc_id}': ingest cut that file into passages ('{doc_id}#1', ...); judge the "
                "passages, or keep each file whole with ingest.max_chunk_words: 0")
    return f"unknown corpus id '{doc_id}'"


def read_qrels(path: Path, query_ids: set[str] | dict | None = None, doc_ids: set[str] | dict | None = None,
               allow_empty: bool = False) -> Qrels:
    """Read a qrels TSV: ``query-id, corpus-id, score`` (BEIR) or ``qid, iteration, docid, relevance`` (TREC).

    A header row (optional) decides the layout; without one, 3 columns are BEIR and 4 are TREC, unless 4 columns
    also read as BEIR with an extra column, which is an error asking for a header. Grades are whole numbers
    (``2.0`` is accepted); a (query, document) judged twice with different grades is an error, twice with the
    same grade counted once.

    Args:
        path: the file.
        query_ids: when given, a row naming any other query is an error.
        doc_ids: when given, a row naming any other document is an error.
        allow_empty: a file with no judgement (empty, or a header only) gives ``{}`` instead of an error; for
            the pipeline's own split files, whose unjudged splits have none.
    """
    lines = [(number, line) for number, line in read_lines(path) if line.strip()]
    header: list[str] | None = None
    layout: tuple[int, int, int] | None = None
    if lines and _is_header(lines[0][1].split("\t")):
        number, line = lines.pop(0)
        header = line.split("\t")
        layout = _header_layout(path, number, header)
    if not lines:
        if allow_empty:
            return {}
        raise DataFileError(path, "the file has a header but no judgements" if header else "file is empty")
    rows = [(number, line.split("\t")) for number, line in lines]
    four_columns = TREC if layout else _headerless_four_columns(path, rows, doc_ids)
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    repeated = 0
    for number, cells in rows:
        if header is not None:
            if len(cells) != len(header):
                raise DataFileError(path, f"expected {len(header)} tab-separated columns as in the header, got {len(cells)}",
                                    number)
            row_layout = layout
        elif len(cells) in (3, 4):
            row_layout = BEIR if len(cells) == 3 else four_columns
        else:
            spaced = "" if len(cells) != 1 or len(cells[0].split()) not in (3, 4) else ": the columns are separated by spaces, not tabs"
            raise DataFileError(path, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cells)}{spaced}",
                                number)
        query_col, doc_col, grade_col = row_layout
        query_id, doc_id, score_text = cells[query_col].strip(), cells[doc_col].strip(), cells[grade_col].strip()
        score = parse_grade(score_text)
        if score is None:
            hint = _trec_hint(cells, row_layout, header)
            if number == lines[0][0] and header is None and not hint:
                hint = f" (nor is the line a header: a header is {EXPECTED_HEADERS})"
            raise DataFileError(path, grade_problem(score_text) + hint, number)
        if query_ids is not None and query_id not in query_ids:
            raise DataFileError(path, f"unknown query id '{query_id}'", number)
        if doc_ids is not None and doc_id not in doc_ids:
            raise DataFileError(path, _unknown_doc(doc_id, doc_ids) + _trec_hint(cells, row_layout, header), number)
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            if judged[doc_id] != score:
                raise DataFileError(path, f"query '{query_id}' and document '{doc_id}' are judged {score} here and "
                                    f"{judged[doc_id]} on line {first_line[(query_id, doc_id)]}: keep one row per pair", number)
            repeated += 1
            continue
        judged[doc_id] = score
        first_line[(query_id, doc_id)] = number
    if repeated:
        logger.warning("%s: %d rows repeat a judgement made on an earlier line (same query, document and grade); each "
                       "counts once", path, repeated)
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
    return queries, read_qrels(folder / QRELS_FILE, queries, allow_empty=True)


def write_split(folder: Path, queries: dict[str, str], qrels: Qrels) -> None:
    """Write one split: ``queries.jsonl`` (sorted by id) and ``qrels.tsv`` into ``folder`` (created; call inside
    an atomic path). ``queries`` may hold queries without judgements."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / QUERIES_FILE, [{"_id": q, "text": queries[q]} for q in sorted(queries)])
    write_qrels(folder / QRELS_FILE, qrels)
