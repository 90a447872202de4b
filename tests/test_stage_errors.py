"""Bad input stops a stage with one clear message (file and line, or key), a non-zero exit, and no output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tiny_dataset

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(TEMPLATE_ROOT / "params.yaml", tmp_path / "params.yaml")
    write_tiny_dataset(tmp_path / "data" / "sample")
    return tmp_path


def run_split(project: Path) -> subprocess.CompletedProcess:
    """Run `ingest`, then `split` if ingest succeeded; the result of the last stage run."""
    for stage in ("ingest", "split"):
        result = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=project, capture_output=True, text=True,
                                env={"PYTHONPATH": str(TEMPLATE_ROOT), "PATH": "/usr/bin:/bin"})
        if result.returncode != 0:
            return result
    return result


def assert_clean_failure(result: subprocess.CompletedProcess, project: Path, *expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith("error: ")
    for text in expected:
        assert text in message, message
    assert not (project / "data" / "split").exists()
    assert not list((project / "data").glob(".*.tmp-*"))


def test_missing_corpus(project: Path) -> None:
    (project / "data" / "sample" / "corpus.jsonl").unlink()
    assert_clean_failure(run_split(project), project, "data/sample/corpus.jsonl: file not found")


def test_malformed_jsonl_line(project: Path) -> None:
    corpus = project / "data" / "sample" / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[2] = '{"_id": "broken", "text": '
    corpus.write_text("\n".join(lines) + "\n")
    assert_clean_failure(run_split(project), project, "data/sample/corpus.jsonl:3: malformed JSON")


def test_qrels_row_with_unknown_document(project: Path) -> None:
    qrels = project / "data" / "sample" / "qrels.tsv"
    qrels.write_text(qrels.read_text() + "q1\tno.such.doc\t1\n")
    assert_clean_failure(run_split(project), project, "data/sample/qrels.tsv:14: unknown corpus id 'no.such.doc'")


def test_qrels_row_with_unknown_query(project: Path) -> None:
    qrels = project / "data" / "sample" / "qrels.tsv"
    qrels.write_text(qrels.read_text() + "q999\tjson.dumps\t1\n")
    assert_clean_failure(run_split(project), project, "data/sample/qrels.tsv:14: unknown query id 'q999'")


def test_unknown_params_key(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  train_fraction: 0.6", "  train_fracton: 0.6"))
    assert_clean_failure(run_split(project), project, "unknown key 'split.train_fracton'", "did you mean 'split.train_fraction'")


def test_wrong_params_type(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  seed: 42", "  seed: forty-two"))
    assert_clean_failure(run_split(project), project, "key 'base.seed'", "forty-two")
