"""The `mine_negatives` stage: retrievers, the output contract, no padding, bad input, rounds, determinism.

The stage runs in-process on a tiny project (tiny model, 13 documents) built once per module and copied per test.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_DOCS, TINY_QUERIES

from embedft.config.params import MineNegativesParams, load_params
from embedft.core.errors import PipelineError
from embedft.core.rows import Document, Pair
from embedft.encoding.store import StoredEmbeddings
from embedft.mining.candidates import candidate_windows, positive_vectors
from stages import mine_negatives

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("data/negatives/negatives.jsonl", "data/negatives/scored.jsonl", "metrics/mine.json", "reports/mine.json",
           "reviews/mine_negatives.md")
TRAIN_QUERIES = range(8)  # q0..q7 are train queries; q1 ("parse JSON text") is judged relevant to two documents


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def set_mine_params(project: Path, **values) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["mine_negatives"].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def tiny_pairs() -> list[dict]:
    """Labelled pairs of the train queries, title pairs of every document, and one general-domain pair."""
    texts = {name: f"{name}\n{text}" for name, text in TINY_DOCS}
    labelled = [(TINY_QUERIES[i], TINY_DOCS[i][0]) for i in TRAIN_QUERIES] + [(TINY_QUERIES[1], "json.dumps")]
    pairs = [{"anchor": q, "positive": texts[d], "positive_id": d, "source": "labelled"} for q, d in labelled]
    pairs += [{"anchor": name, "positive": text, "positive_id": name, "source": "title"} for name, text in TINY_DOCS]
    pairs.append({"anchor": "what is the capital of France", "positive": "Paris is the capital and largest city of France.",
                  "positive_id": "", "source": "general"})
    return pairs


@pytest.fixture(scope="module")
def built_project(tmp_path_factory, tiny_model_path) -> Path:
    """A project holding exactly what `mine_negatives` reads, with the tiny model's corpus embeddings."""
    from embedft.config.params import BaseParams
    from embedft.encoding.models import load_model
    from embedft.encoding.store import corpus_embeddings, save_embeddings

    project = tmp_path_factory.mktemp("mine") / "project"
    documents = [{"_id": name, "title": name, "text": text} for name, text in TINY_DOCS]
    documents.append({"_id": "json.loads.copy", "title": "", "text": TINY_DOCS[1][1]})  # the text of json.loads again
    write_jsonl(project / "data/corpus/corpus.jsonl", documents)
    write_jsonl(project / "data/split/train/queries.jsonl", [{"_id": f"q{i}", "text": TINY_QUERIES[i]} for i in TRAIN_QUERIES])
    qrels = ["query-id\tcorpus-id\tscore"] + [f"q{i}\t{TINY_DOCS[i][0]}\t1" for i in TRAIN_QUERIES] + ["q1\tjson.dumps\t1"]
    (project / "data/split/train/qrels.tsv").write_text("\n".join(qrels) + "\n")
    write_jsonl(project / "data/pairs/pairs.jsonl", tiny_pairs())
    shutil.copy(TEMPLATE_ROOT / "params.yaml", project / "params.yaml")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["base"].update({"model": str(tiny_model_path), "max_seq_length": 64})
    (project / "machine.yaml").write_text("encode_batch_size: 16\n")
    # The tiny random model scores every pair alike, so the default relative margin would drop nearly everything.
    params["mine_negatives"].update({"range_min": 1, "range_max": 9, "num_negatives": 2, "relative_margin": None})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    base = BaseParams(**params["base"])
    corpus = {d["_id"]: Document(d["_id"], d["title"], d["text"]) for d in documents}
    model = load_model(str(tiny_model_path), "cpu", 64)
    save_embeddings(project / "data/embeddings/base", corpus_embeddings(model, str(tiny_model_path), corpus, base))
    return project


@pytest.fixture
def project(built_project, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the built project, as the working directory."""
    copy = tmp_path / "project"
    shutil.copytree(built_project, copy)
    monkeypatch.chdir(copy)
    return copy


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def negatives_of(row: dict) -> list[str]:
    return [row[f"negative_{i}"] for i in range(1, len(row)) if f"negative_{i}" in row]


def numbers_only(tree) -> bool:
    if isinstance(tree, dict):
        return all(isinstance(k, str) and numbers_only(v) for k, v in tree.items())
    return isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree)


# --- the stage -----------------------------------------------------------------------------------------------


def test_outputs_follow_the_contract(project: Path) -> None:
    mine_negatives.main([])
    rows = read_rows(project / "data/negatives/negatives.jsonl")
    scored = read_rows(project / "data/negatives/scored.jsonl")
    report = json.loads((project / "reports/mine.json").read_text())
    assert len(rows) == len(scored) == len(tiny_pairs()) == report["pairs"]
    assert rows == sorted(rows, key=lambda r: (r["source"], r["anchor"], r["positive"]))
    for row, scores in zip(rows, scored):
        negatives = negatives_of(row)
        assert set(row) == {"anchor", "positive", "source", *(f"negative_{i}" for i in range(1, len(negatives) + 1))}
        assert len(negatives) <= 2 and row["positive"] not in negatives
        assert scores["negatives"] == negatives and len(scores["negative_scores"]) == len(negatives)
        assert (scores["anchor"], scores["positive"], scores["source"]) == (row["anchor"], row["positive"], row["source"])
        assert scores["score_source"] == "dense" and isinstance(scores["positive_score"], float)
    json_loads = "json.loads\n" + TINY_DOCS[1][1]
    for row in rows:
        if row["anchor"] == TINY_QUERIES[1]:  # both labelled positives and the copy of json.loads are excluded
            assert not {json_loads, TINY_DOCS[1][1], "json.dumps\n" + TINY_DOCS[0][1]} & set(negatives_of(row))
    assert numbers_only(report)
    assert report["negatives_written"] == sum(len(negatives_of(r)) for r in rows)
    assert report["false_negatives"]["audited_pairs"] == 9
    assert report["full_pairs"] == len(rows) and report["negatives_written"] == 2 * len(rows)
    assert report["false_negatives"]["output"]["labelled_relevant"] == 0
    review = (project / "reviews/mine_negatives.md").read_text()
    assert review.count("\n### ") == 21  # every one of the 21 queries (fewer than review_queries)
    assert "| rank | dense | cross-encoder | decision | document |" in review


def test_same_inputs_give_byte_identical_outputs(project: Path) -> None:
    set_mine_params(project, retriever="hybrid", sampling="random", num_negatives=3)
    mine_negatives.main([])
    first = {name: (project / name).read_bytes() for name in OUTPUTS}
    shutil.rmtree(project / "data/negatives")
    mine_negatives.main([])
    assert {name: (project / name).read_bytes() for name in OUTPUTS} == first


def test_a_query_with_no_surviving_negative_is_counted_not_padded(project: Path, capsys) -> None:
    set_mine_params(project, max_score=-1.0)  # every cosine is above -1: every candidate is dropped
    mine_negatives.main([])
    rows = read_rows(project / "data/negatives/negatives.jsonl")
    report = json.loads((project / "reports/mine.json").read_text())
    assert all(set(row) == {"anchor", "positive", "source"} for row in rows)
    assert report["negatives_written"] == 0 and report["pairs_without_negative"] == len(rows)
    assert report["queries_without_negative"] == len({r["anchor"] for r in rows})
    assert report["dropped"]["max_score"] > 0
    assert "No candidate survived the filters" in (project / "reviews/mine_negatives.md").read_text()
    assert f"{len(rows)} without any" in capsys.readouterr().out


def test_range_max_larger_than_the_corpus_is_reduced_with_a_warning(project: Path, caplog) -> None:
    set_mine_params(project, range_max=500)
    mine_negatives.main([])
    assert "mine_negatives.range_max 500 exceeds the corpus (13 documents); using 13" in caplog.text
    assert "WARNING" in {record.levelname for record in caplog.records}
    assert json.loads((project / "reports/mine.json").read_text())["range_max"] == 13


def test_range_min_beyond_the_corpus_is_an_error(project: Path) -> None:
    set_mine_params(project, range_min=20, range_max=30)
    with pytest.raises(PipelineError, match=r"mine_negatives.range_min is 20, but the corpus has only 13 documents"):
        mine_negatives.main([])


def test_a_positive_missing_from_the_corpus_names_the_query(project: Path) -> None:
    pairs = tiny_pairs() + [{"anchor": "a query about nothing", "positive": "x" * 60, "positive_id": "no.such.doc", "source": "llm"}]
    write_jsonl(project / "data/pairs/pairs.jsonl", pairs)
    result = subprocess.run([sys.executable, "-m", "stages.mine_negatives"], cwd=project, capture_output=True, text=True,
                            env={"PYTHONPATH": str(TEMPLATE_ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: data/pairs/pairs.jsonl:{len(pairs)}: the positive 'no.such.doc' of the query "
                                    "'a query about nothing' is not in the corpus")
    assert not (project / "data/negatives").exists() and not (project / "metrics").exists()


def test_mining_off_writes_rows_without_negatives(project: Path) -> None:
    set_mine_params(project, num_negatives=0)
    mine_negatives.main([])
    rows = read_rows(project / "data/negatives/negatives.jsonl")
    assert all(set(row) == {"anchor", "positive", "source"} for row in rows)
    assert not (project / "data/negatives/scored.jsonl").exists()
    assert json.loads((project / "reports/mine.json").read_text())["negatives_written"] == 0
    assert "Mining is off" in (project / "reviews/mine_negatives.md").read_text()


@pytest.mark.parametrize("retriever", ["bm25", "hybrid"])
def test_lexical_retrievers_mine_with_dense_scores(project: Path, retriever: str) -> None:
    set_mine_params(project, retriever=retriever, relative_margin=None)
    mine_negatives.main([])
    scored = read_rows(project / "data/negatives/scored.jsonl")
    assert any(row["negatives"] for row in scored)
    assert {row["score_source"] for row in scored} == {"dense"}


def test_faiss_backend_gives_the_exact_results(project: Path) -> None:
    mine_negatives.main([])
    exact = (project / "data/negatives/negatives.jsonl").read_bytes()
    set_mine_params(project, search_backend="faiss")
    mine_negatives.main([])
    assert (project / "data/negatives/negatives.jsonl").read_bytes() == exact


def test_mining_with_another_model_encodes_the_corpus(project: Path, tiny_model_path: Path, caplog) -> None:
    shutil.copytree(tiny_model_path, project / "other_model")
    set_mine_params(project, model="other_model")
    caplog.set_level("INFO", logger="embedft")
    mine_negatives.main([])
    assert "encoding the corpus with mine_negatives.model 'other_model'" in caplog.text
    assert (project / "data/negatives/negatives.jsonl").exists()


# --- the cross-encoder ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A randomly initialised one-layer BERT cross-encoder with the packaged MiniLM tokenizer, built offline."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from embedft.encoding.models import resolve_model_path

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cross_encoder")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_cross_encoder_scores_go_to_the_scored_file(project: Path, tiny_cross_encoder: Path) -> None:
    set_mine_params(project, cross_encoder=str(tiny_cross_encoder), cross_encoder_margin=0.0001, relative_margin=None)
    mine_negatives.main([])
    scored = read_rows(project / "data/negatives/scored.jsonl")
    report = json.loads((project / "reports/mine.json").read_text())
    assert {row["score_source"] for row in scored} == {"cross_encoder"}
    for row in scored:
        assert 0.0 < row["positive_score"] < 1.0  # a one-label cross-encoder's scores are sigmoid outputs
        bound = row["positive_score"] - abs(row["positive_score"]) * 0.0001
        assert all(score <= bound + 1e-6 for score in row["negative_scores"])
    assert report["dropped"]["cross_encoder"] > 0
    assert "cross-encoder `" in (project / "reviews/mine_negatives.md").read_text()
    first = {name: (project / name).read_bytes() for name in OUTPUTS}
    mine_negatives.main([])
    assert {name: (project / name).read_bytes() for name in OUTPUTS} == first


def test_a_missing_cross_encoder_is_named(project: Path) -> None:
    set_mine_params(project, cross_encoder="./no/such/cross-encoder")
    with pytest.raises(PipelineError,
                       match=r"params.yaml mine_negatives.cross_encoder: model path './no/such/cross-encoder' does not exist"):
        mine_negatives.main([])


# --- round 2 -------------------------------------------------------------------------------------------------


def make_round_one_outputs(project: Path, tiny_model_path: Path, model_name: str = "models/finetuned") -> None:
    """Stand-ins for round 1's fine-tuned model and the corpus embeddings its `evaluate` stores."""
    shutil.copytree(tiny_model_path, project / "models/finetuned")
    shutil.copytree(project / "data/embeddings/base", project / "data/embeddings/finetuned")
    info = project / "data/embeddings/finetuned/info.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "model": model_name}))


def test_round_two_mines_with_round_one_model_into_its_own_paths(project: Path, tiny_model_path: Path, capsys) -> None:
    make_round_one_outputs(project, tiny_model_path)
    mine_negatives.main(["--round", "2"])
    assert "dense model `models/finetuned`" in (project / "reviews/round2/mine_negatives.md").read_text()
    assert read_rows(project / "data/round2/negatives/negatives.jsonl")
    assert json.loads((project / "reports/round2/mine.json").read_text())["pairs"] == len(tiny_pairs())
    assert not any((project / path).exists() for path in ("data/negatives", "reports/mine.json", "metrics/mine.json"))


def test_round_two_refuses_embeddings_of_another_model(project: Path, tiny_model_path: Path) -> None:
    make_round_one_outputs(project, tiny_model_path, model_name="some/other-model")
    with pytest.raises(PipelineError, match=r"data/embeddings/finetuned: the stored embeddings are of model 'some/other-model'"):
        mine_negatives.main(["--round", "2"])


# --- pure parts ----------------------------------------------------------------------------------------------


def test_read_labelled_names_a_judged_document_missing_from_the_corpus(project: Path) -> None:
    corpus = {name: Document(name, name, text) for name, text in TINY_DOCS if name != "json.dumps"}
    with pytest.raises(PipelineError, match=r"the query 'convert a value to JSON text' \(q0\) is judged relevant to 'json.dumps'"):
        mine_negatives.read_labelled(project / "data/split/train", corpus)


def test_read_labelled_keys_by_normalised_query_text(project: Path) -> None:
    corpus = {name: Document(name, name, text) for name, text in TINY_DOCS}
    labelled = mine_negatives.read_labelled(project / "data/split/train", corpus)
    assert labelled["parse json text"] == {"json.loads", "json.dumps"}
    assert mine_negatives.read_labelled(project / "no/such/split", corpus) == {}


def test_candidate_windows_for_each_retriever() -> None:
    texts = ["apple banana", "banana cherry", "cherry date", "date elderberry", "fig grape"]
    vectors = np.eye(5, dtype=np.float32)
    anchor = np.array([[0.1, 0.2, 0.9, 0.3, 0.0]], dtype=np.float32)
    settings = MineNegativesParams(range_min=1, range_max=4)
    dense = candidate_windows(["cherry"], anchor, vectors, texts, settings, 4)["cherry"]
    assert dense.rows.tolist() == [3, 1, 0] and dense.ranks.tolist() == [1, 2, 3]
    np.testing.assert_allclose(dense.scores, [0.3, 0.2, 0.1])
    lexical = candidate_windows(["cherry"], anchor, vectors, texts, settings.model_copy(update={"retriever": "bm25"}), 4)
    assert lexical["cherry"].rows.tolist() == [2]  # only rows 1 and 2 say cherry, tied: row 1 ranks first
    np.testing.assert_allclose(lexical["cherry"].scores, [0.9])  # the window's scores are dense scores
    fused = candidate_windows(["cherry"], anchor, vectors, texts, settings.model_copy(update={"retriever": "hybrid"}), 4)
    # Dense ranks 2, 3, 1, 0; BM25 ranks 1, 2. Fused: 2 (1/61 + 1/62), 1 (1/63 + 1/61), 3 (1/62), 0 (1/64).
    assert fused["cherry"].rows.tolist() == [1, 3, 0]


def test_positive_vectors_reuse_stored_documents_and_encode_the_rest() -> None:
    stored = StoredEmbeddings(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), ["a", "b"], {})
    pairs = [Pair("q", "text of b", "b", "title"), Pair("g", "outside", "", "general")]
    encoded = []
    vectors = positive_vectors(pairs, stored, lambda texts: encoded.extend(texts) or np.array([[0.6, 0.8]]))
    assert encoded == ["outside"]
    np.testing.assert_allclose(vectors, [[0.0, 1.0], [0.6, 0.8]])


def test_params_reject_bad_mining_settings(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    for section, text, message in [
        ("mine_negatives", {"retriever": "sparse"}, "key 'mine_negatives.retriever'"),
        ("mine_negatives", {"relative_margin": 1.5}, "key 'mine_negatives.relative_margin'"),
        ("mine_negatives", {"range_min": 5, "range_max": 5}, "range_max (5) must be greater than range_min (5)"),
        ("mine_negatives", {"cross_encodr": "x"}, "did you mean 'mine_negatives.cross_encoder'"),
        ("rounds", {"extra": [3]}, "extra must be [] or [2], got [3]"),
    ]:
        path.write_text(yaml.safe_dump({section: text}))
        with pytest.raises(PipelineError) as raised:
            load_params(path)
        assert message in str(raised.value)
    path.write_text(yaml.safe_dump({"mine_negatives": {"max_score": None, "relative_margin": None}, "rounds": {"extra": [2]}}))
    params = load_params(path)
    assert params.rounds.extra == [2] and params.mine_negatives.relative_margin is None
