"""The pipeline's foundation: errors, atomic outputs, the rows and files that pass between stages, where they
live, and how a stage runs. Pure Python: importing it loads neither numpy nor torch."""

from embedft.core import artifacts
from embedft.core.atomic import atomic_path, write_json_atomic, write_text_atomic
from embedft.core.beir import read_corpus, read_qrels, read_queries, read_split, relevant, write_corpus, write_qrels, write_split
from embedft.core.errors import DataFileError, PipelineError
from embedft.core.jsonl import parse_json_line, read_jsonl, read_lines, write_jsonl
from embedft.core.processes import peak_rss_mb, process_is_running
from embedft.core.rows import Document, MinedRow, Pair, Qrels, ScoredRow
from embedft.core.runner import run_stage
from embedft.core.stage_files import read_negatives, read_pairs, read_scored, write_negatives, write_pairs
from embedft.core.text import clean_query, normalise_query

__all__ = [
    "DataFileError", "Document", "artifacts", "MinedRow", "Pair", "PipelineError", "Qrels", "ScoredRow", "atomic_path", "clean_query",
    "normalise_query", "parse_json_line", "peak_rss_mb", "process_is_running", "read_corpus", "read_jsonl", "read_lines",
    "read_negatives", "read_pairs", "read_qrels", "read_queries", "read_scored", "read_split", "relevant", "run_stage",
    "write_corpus", "write_json_atomic", "write_jsonl", "write_negatives", "write_pairs", "write_qrels", "write_split",
    "write_text_atomic",
]
