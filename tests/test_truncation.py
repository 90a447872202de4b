"""Texts longer than the model's window are counted, so the truncation is reported, never silent."""

from __future__ import annotations

from embedft.encoding.models import load_model
from embedft.encoding.token_window import count_over_window, truncation_warning


def test_counts_texts_over_the_window_including_the_prompt(tiny_model_path):
    model = load_model(str(tiny_model_path), "cpu", max_seq_length=16)
    short, long = "a short text", " ".join(["word"] * 40)
    assert count_over_window(model, [short, long, long], batch_size=2) == 2
    assert count_over_window(model, [short]) == 0
    assert count_over_window(model, [short], prompt=" ".join(["instruction"] * 20) + ": ") == 1


def test_warning_names_the_key_and_the_share():
    assert truncation_warning("documents", 0, 10, 256, "base.max_seq_length") is None
    message = truncation_warning("documents", 3, 12, 256, "base.max_seq_length")
    assert message == ("3 of 12 documents (25.0%) are longer than base.max_seq_length (256 tokens) and were "
                       "truncated to it; raise base.max_seq_length if their ends matter")
