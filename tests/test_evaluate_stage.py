"""The `tune_hybrid` and `evaluate` stages in-process on a tiny project: the hybrid's weight chosen on dev and
saved next to the model, every system scored (candidate model, cross-encoder reranking), the system to ship
chosen on dev, and metrics/evaluate.json kept short."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import TINY_DOCS, TINY_QUERIES

from embedft.core.errors import DataFileError
from embedft.evaluation.shipping import best_on_dev, shipping_candidates, uses_fine_tuning
from stages import evaluate, tune_hybrid

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
DEV, TEST = range(0, 5), range(5, 12)
PACKAGED = "sentence-transformers/all-MiniLM-L6-v2"
HEADLINE = "ndcg@10"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def write_split(folder: Path, numbers: range) -> None:
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": TINY_QUERIES[i]} for i in numbers])
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{TINY_DOCS[i][0]}\t1\n" for i in numbers))


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A randomly initialised one-layer BERT cross-encoder with the packaged MiniLM tokenizer, built offline."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from embedft.encoding.models import resolve_model_path

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cross_encoder")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(PACKAGED))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def built_project(tmp_path_factory, tiny_model_path) -> Path:
    """What `tune_hybrid` and `evaluate` read: corpus, dev and test splits, pairs, the tiny model as base and as the
    'fine-tuned' model (the packaged MiniLM), and both models' corpus embeddings."""
    from embedft.config.params import BaseParams
    from embedft.core.rows import Document
    from embedft.encoding.models import load_model
    from embedft.encoding.store import corpus_embeddings, save_embeddings

    project = tmp_path_factory.mktemp("evaluate") / "project"
    documents = [{"_id": name, "title": name, "text": text} for name, text in TINY_DOCS]
    write_jsonl(project / "data/corpus/corpus.jsonl", documents)
    write_split(project / "data/split/dev", DEV)
    write_split(project / "data/split/test", TEST)
    write_jsonl(project / "data/pairs/pairs.jsonl", [{"anchor": name, "positive": text, "positive_id": name, "source": "title"}
                                                      for name, text in TINY_DOCS])
    params = yaml.safe_load((TEMPLATE_ROOT / "params.yaml").read_text())
    params["base"].update({"model": str(tiny_model_path), "max_seq_length": 64})
    params["evaluate"].update({"bootstrap_resamples": 200, "recall_at": [1, 10], "map_at": [10]})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "machine.yaml").write_text("encode_batch_size: 16\ndevice: cpu\n")
    base = BaseParams(**params["base"])
    corpus = {d["_id"]: Document(d["_id"], d["title"], d["text"]) for d in documents}
    save_embeddings(project / "data/embeddings/base", corpus_embeddings(load_model(str(tiny_model_path), "cpu", 64), "base", corpus, base))
    finetuned = load_model(PACKAGED, "cpu", 64)
    finetuned.save(str(project / "models/finetuned"))
    save_embeddings(project / "data/embeddings/finetuned", corpus_embeddings(finetuned, "models/finetuned", corpus, base))
    return project


@pytest.fixture
def project(built_project: Path, tmp_path: Path, monkeypatch) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(built_project, copy)
    monkeypatch.chdir(copy)
    return copy


def set_evaluate_params(project: Path, **values) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_the_hybrid_weight_is_chosen_on_dev_and_scored_on_test(project: Path, capsys) -> None:
    tune_hybrid.main([])
    choice = json.loads((project / "models/hybrid.json").read_text())
    assert choice["chosen_on"] == "dev" and choice["dev_queries"] == len(DEV) and choice["depth"] == 10
    assert set(choice["candidates"]) == {"min_max", "z_score"} and len(choice["candidates"]["min_max"]) == 21
    assert choice["dev_score"] == choice["candidates"][choice["normalisation"]][format(choice["weight"], ".6g")]
    assert choice["dense_model"] == "models/finetuned"
    assert "tune_hybrid: 5 dev queries; dense weight" in capsys.readouterr().out
    evaluate.main([])
    report = json.loads((project / "reports/evaluate.json").read_text())
    assert report["hybrid_choice"]["weight"] == choice["weight"]
    assert report["dev"][HEADLINE]["hybrid"] == pytest.approx(choice["dev_score"])  # same fusion on dev in both stages
    for name in ("hybrid_vs_base", "hybrid_vs_finetuned", "hybrid_rrf_vs_base"):
        assert {"difference", "ci_low", "ci_high", "p_value"} <= set(report["comparisons"][name])
    shipped = report["shipped"]
    dev_scores = report["dev"][HEADLINE]
    assert dev_scores[shipped["system"]] == max(dev_scores.values())
    alternatives = [name for name in dev_scores if uses_fine_tuning(name) != bool(shipped["fine_tuned"])]
    assert shipped["best_alternative"] == best_on_dev(dev_scores, shipping_candidates(alternatives))
    assert shipped["vs_best_alternative"]["difference"] == pytest.approx(
        report[shipped["system"]][HEADLINE] - report[shipped["best_alternative"]][HEADLINE], abs=1e-5)
    out = capsys.readouterr().out
    assert f"evaluate: ship {shipped['system']} (" in out
    summary = json.loads((project / "metrics/evaluate.json").read_text())
    assert summary["shipped"]["system"] == shipped["system"] and "p_value" in summary["shipped"]
    assert "hybrid_rrf" not in summary and "dev" not in summary
    assert (project / "plots/recall_at_k.csv").read_text().startswith("k,base,fine-tuned,BM25,hybrid,hybrid RRF\n")


def test_candidate_models_and_a_cross_encoder_are_scored_as_alternatives(project: Path, tiny_model_path: Path,
                                                                         tiny_cross_encoder: Path, capsys) -> None:
    set_evaluate_params(project, candidate_models=[PACKAGED, str(tiny_model_path)], rerank_cross_encoder=str(tiny_cross_encoder),
                        rerank_top_k=5)
    tune_hybrid.main([])
    evaluate.main([])
    report = json.loads((project / "reports/evaluate.json").read_text())
    # The packaged MiniLM is also this project's 'fine-tuned' model, so zero-shot it must score the same.
    assert report[f"zero_shot:{PACKAGED}"] == report["finetuned"]
    assert report[f"zero_shot:{tiny_model_path}"] == report["base"]
    dev = report["dev"]["ndcg@10"]
    assert {"reranked", f"zero_shot:{PACKAGED}"} <= set(dev) and "reranked" in report
    first_stage = [name for name in shipping_candidates(list(dev)) if name != "reranked"]
    assert report["reranked_of"] == best_on_dev(dev, first_stage)  # the cross-encoder reranks the system best on dev
    table = (project / "reports/evaluate_per_query.csv").read_text()
    assert ",reranked," in table and f",zero_shot:{PACKAGED}," in table
    summary = json.loads((project / "metrics/evaluate.json").read_text())
    assert not any(key.startswith("zero_shot:") or key == "reranked" for key in summary)  # alternatives stay in the report
    assert "evaluate: ship " in capsys.readouterr().out


def test_without_dev_queries_the_default_weight_is_used_and_nothing_is_recommended(project: Path, capsys) -> None:
    (project / "data/split/dev/queries.jsonl").write_text("")
    (project / "data/split/dev/qrels.tsv").write_text("query-id\tcorpus-id\tscore\n")
    tune_hybrid.main([])
    choice = json.loads((project / "models/hybrid.json").read_text())
    assert choice["chosen_on"].startswith("default") and choice["weight"] == 0.5 and choice["candidates"] == {}
    assert "no judged dev queries, so nothing to choose on" in capsys.readouterr().out
    evaluate.main([])
    report = json.loads((project / "reports/evaluate.json").read_text())
    assert report["shipped"]["system"] is None and "hybrid" in report
    assert "shipped" not in json.loads((project / "metrics/evaluate.json").read_text())
    assert "evaluate: no system recommended" in capsys.readouterr().out


def test_evaluate_without_the_choice_file_names_it(project: Path) -> None:
    with pytest.raises(DataFileError, match=r"models/hybrid.json: the weighted hybrid's settings are missing"):
        evaluate.main([])
