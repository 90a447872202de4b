"""Counting texts longer than a model's window, so truncation is reported and never silent."""

from __future__ import annotations

from collections.abc import Callable

from sentence_transformers import SentenceTransformer


def count_over_window(model: SentenceTransformer, texts: list[str], prompt: str = "", batch_size: int = 2048) -> int:
    """How many of ``texts`` (each with ``prompt`` before it) have more tokens than ``model.max_seq_length``.

    The model truncates such texts to its window when it encodes or trains on them; their tail is never seen.

    Args:
        model: the model whose tokenizer and ``max_seq_length`` decide.
        texts: the texts as they will be encoded.
        prompt: the instruction put before each text (it takes part of the window).
        batch_size: texts tokenized at once; bounds memory on large corpora.
    """
    tokenizer, window = model.tokenizer, model.max_seq_length
    over = 0
    for start in range(0, len(texts), batch_size):
        batch = [prompt + text for text in texts[start : start + batch_size]]
        lengths = tokenizer(batch, add_special_tokens=True, truncation=False, return_length=True,
                            return_attention_mask=False, return_token_type_ids=False, verbose=False)["length"]
        over += sum(length > window for length in lengths)
    return over


def text_token_counter(model: SentenceTransformer, prompt: str = "") -> Callable[[str], int]:
    """A function giving the tokens of a text as ``model`` reads it: ``prompt`` before it, special tokens included,
    nothing truncated (what :func:`count_over_window` compares with the window)."""
    tokenizer = model.tokenizer

    def count(text: str) -> int:
        return len(tokenizer(prompt + text, add_special_tokens=True, truncation=False, return_attention_mask=False,
                             return_token_type_ids=False, verbose=False)["input_ids"])

    return count


def truncation_warning(what: str, over: int, total: int, window: int, key: str) -> str | None:
    """The warning to give when ``over`` of ``total`` texts exceed the ``window``; None when none do."""
    if not over:
        return None
    return (f"{over} of {total} {what} ({100 * over / total:.1f}%) are longer than {key} ({window} tokens) "
            f"and were truncated to it; raise {key} if their ends matter")
