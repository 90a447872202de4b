"""The model card as the Hub reads it: sentence-transformers' front matter on the card `train` saves, and the card
`publish` uploads, with a model-index of the test metrics, the verdict with its interval and the width table."""

from __future__ import annotations

import yaml
from sentence_transformers import SentenceTransformerModelCardData
from test_train import card_facts

from embedft.training.model_card import (
    TEST_SECTION,
    card_with_test_metrics,
    hub_metadata,
    render_model_card,
    split_front_matter,
)
from embedft.training.saving import base_card_metadata

FINETUNED = {"ndcg@10": 0.681575, "mrr@10": 0.618584, "map@100": 0.622705, "recall@1": 0.487063, "recall@10": 0.881048,
             "recall@100": 0.975806, "precision@10": 0.090121}
BASE = {key: round(value - 0.04, 6) for key, value in FINETUNED.items()}
EVALUATION = {
    "base": BASE, "finetuned": FINETUNED, "test_queries": 496, "corpus_documents": 1703, "verdict": "ship", "suspected_leak": 0,
    "comparisons": {"finetuned_vs_base": {"difference": 0.037104, "ci_low": 0.014389, "ci_high": 0.059152, "p_value": 0.001499,
                                          "wins": 137, "ties": 265, "losses": 94}},
    "leakage": {"exact": 0, "normalised": 0, "near_duplicate": 17},
}


def cell(score: float, retention: float, size: int) -> dict:
    return {"ndcg@10": score, "retention_ndcg@10_pct": retention, "bytes_per_vector": size}


TRUNCATION = {
    "test_queries": 496,
    "base": {"384": {"float32": cell(0.6445, 100.0, 1536), "binary": cell(0.5553, 86.16, 48)},
             "64": {"float32": cell(0.4893, 75.92, 256), "binary": cell(0.2319, 35.98, 8)}},
    "finetuned": {"384": {"float32": cell(0.6816, 100.0, 1536), "binary": cell(0.6231, 91.41, 48)},
                  "64": {"float32": cell(0.5630, 82.6, 256), "binary": cell(0.2911, 42.71, 8)}},
}


def hub_card() -> str:
    """The card `train` writes for a base model named on the Hub whose own card gives licence and language."""
    card_data = SentenceTransformerModelCardData()
    card_data.add_tags(["loss:MatryoshkaLoss", "dataset_size:42"])
    metadata = hub_metadata(card_data, "BAAI/bge-small-en-v1.5", {"license": "mit", "language": ["en"], "tags": ["ignored"]})
    return render_model_card(card_facts(hub=metadata))


def test_the_saved_card_has_sentence_transformers_front_matter():
    front, body = split_front_matter(hub_card())
    assert front["library_name"] == "sentence-transformers" and front["pipeline_tag"] == "sentence-similarity"
    assert front["base_model"] == "BAAI/bge-small-en-v1.5" and front["license"] == "mit" and front["language"] == ["en"]
    assert {"sentence-transformers", "sentence-similarity", "loss:MatryoshkaLoss", "dataset_size:42", "embedft"} <= set(front["tags"])
    assert "ignored" not in front["tags"] and "model-index" not in front  # no test metrics yet
    assert body.startswith("# BAAI/bge-small-en-v1.5, fine-tuned for retrieval") and TEST_SECTION in body
    assert hub_card() == hub_card()  # the same facts give the same bytes


def test_a_local_base_model_is_no_base_model_id(tmp_path):
    metadata = hub_metadata(SentenceTransformerModelCardData(), str(tmp_path), {})
    assert "base_model" not in metadata and "license" not in metadata
    assert metadata["library_name"] == "sentence-transformers"


def test_the_packaged_base_models_card_gives_its_licence():
    metadata = base_card_metadata("sentence-transformers/all-MiniLM-L6-v2")
    assert metadata["license"] == "apache-2.0" and metadata["language"] == "en"


def test_the_published_card_has_a_model_index_of_the_test_metrics():
    card = hub_card()
    published = card_with_test_metrics(card, EVALUATION, TRUNCATION, model_name="your-org/your-model", dataset="sample",
                                       metadata={"license": "apache-2.0", "datasets": ["org/data"]})
    front, body = split_front_matter(published)
    assert front["license"] == "apache-2.0" and front["datasets"] == ["org/data"]  # publish's params win
    assert front["base_model"] == "BAAI/bge-small-en-v1.5"
    (index,) = front["model-index"]
    assert index["name"] == "your-org/your-model"
    (result,) = index["results"]
    assert result["task"]["type"] == "retrieval" and result["dataset"] == {"name": "sample", "type": "sample", "split": "test"}
    assert {metric["type"]: metric["value"] for metric in result["metrics"]} == {
        name.replace("@", "_at_"): value for name, value in FINETUNED.items()}
    assert {metric["name"] for metric in result["metrics"]} >= {"nDCG@10", "MRR@10", "Recall@100"}
    # The body up to the test section is the saved card's, unchanged.
    assert body.partition(TEST_SECTION)[0] == split_front_matter(card)[1].partition(TEST_SECTION)[0]
    test = body.partition(TEST_SECTION)[2]
    assert "On 496 test queries" in test and "| fine-tuned | 0.6816 |" in test and "| base model | 0.6416 |" in test
    assert "**+0.0371** (paired bootstrap 95% CI +0.0144 .. +0.0592, p = 0.0015; 137 queries won" in test
    assert "Verdict: **ship**" in test and "17 as near-duplicates." in test
    assert "| model | 384 | 64 |" in test and "| fine-tuned binary | 0.6231 (91%) | 0.2911 (43%) |" in test
    assert "| bytes per vector (float32 / binary) | 1536 / 48 | 256 / 8 |" in test
    assert yaml.safe_load(published.split("---\n")[1]) == front  # plain YAML, as the Hub parses it


def test_a_test_split_without_judgements_gives_no_model_index():
    published = card_with_test_metrics(hub_card(), {"test_queries": 0}, None, model_name="org/m", dataset="sample")
    front, body = split_front_matter(published)
    assert "model-index" not in front and "nothing was measured after training" in body


def test_a_card_without_test_section_is_refused():
    import pytest

    with pytest.raises(ValueError, match="no '## Test metrics' section"):
        card_with_test_metrics("# a card\n", EVALUATION, model_name="org/m", dataset="sample")
