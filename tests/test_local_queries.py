"""Local query generation with a tiny, randomly initialised T5 built here (offline, a few seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedft.config.params import LocalGeneratorParams
from embedft.core.errors import PipelineError
from embedft.pairs.local_queries import generate_local_queries

PASSAGES = {f"doc{i}": f"Passage number {i} explains how function {i} parses its arguments." for i in range(5)}


def build_tiny_t5(folder: Path) -> Path:
    """Save a 1-layer, 32-wide T5 with the packaged MiniLM (BERT) tokenizer."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from embedft.encoding.models import resolve_model_path

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=2, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.cls_token_id)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


def settings(model: Path, **overrides) -> LocalGeneratorParams:
    return LocalGeneratorParams(**{"enabled": True, "model": str(model), "queries_per_passage": 3, "batch_size": 2,
                                   "max_new_tokens": 6, "max_input_tokens": 32, **overrides})


def test_generates_seeded_batched_queries(tiny_t5):
    queries, counts = generate_local_queries(PASSAGES, settings(tiny_t5), seed=0, device="cpu", progress=False)
    assert set(queries) <= set(PASSAGES) and len(queries) >= 4
    assert all(1 <= len(texts) <= 3 and len(set(texts)) == len(texts) for texts in queries.values())
    assert all(text == " ".join(text.split()) and text for texts in queries.values() for text in texts)
    assert counts["passages"] == 5 and counts["gpu"] == 0
    assert counts["queries"] == sum(len(t) for t in queries.values())
    assert counts["queries"] + counts["empty_or_repeated"] == 15
    # The same seed gives the same queries, whatever order the passages come in; another seed, others.
    again, _ = generate_local_queries(dict(reversed(PASSAGES.items())), settings(tiny_t5), seed=0, device="cpu", progress=False)
    assert again == queries
    other, _ = generate_local_queries(PASSAGES, settings(tiny_t5), seed=1, device="cpu", progress=False)
    assert other != queries


def test_model_that_cannot_be_loaded(tmp_path):
    with pytest.raises(PipelineError, match="synthesize.local_generator.model: could not load the seq2seq model"):
        generate_local_queries(PASSAGES, settings(tmp_path / "missing"), seed=0, device="cpu", progress=False)
