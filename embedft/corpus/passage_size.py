"""How long a passage may be: at most so many words, and at most so many tokens of the model's tokenizer as the
model reads it (document prompt, title and text, special tokens included), so that a passage fits the window.

A word cap alone does not keep a passage inside the window: code, tables and non-English text take several tokens a
word. :func:`windows` cuts a text at word boundaries into the longest pieces that fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

WORD = re.compile(r"\S+")

TokenCounter = Callable[[str], int]
"""Tokens of a passage's full text (title line and text) as the model reads it: prompt and special tokens included."""


def word_count(text: str) -> int:
    return len(WORD.findall(text))


def full_text(title: str, text: str) -> str:
    """A passage as a retriever sees it (as ``Document.full_text`` joins title and text)."""
    title, text = title.strip(), text.strip()
    return f"{title}\n{text}" if title else text


@dataclass(frozen=True)
class PassageLimit:
    """The caps a passage must keep.

    Args:
        max_words: most words of its text (the title is not counted); 0: no word cap.
        max_tokens: most tokens of its title and text as the model reads them; 0: no token cap.
        count_tokens: counts those tokens; needed when ``max_tokens`` is set.
    """

    max_words: int = 0
    max_tokens: int = 0
    count_tokens: TokenCounter | None = None

    def __post_init__(self) -> None:
        if self.max_tokens and self.count_tokens is None:
            raise ValueError("a token cap needs a token counter")

    @property
    def unlimited(self) -> bool:
        return not self.max_words and not self.max_tokens

    def fits(self, title: str, text: str) -> bool:
        """True when a passage of this title and text keeps both caps."""
        if self.max_words and word_count(text) > self.max_words:
            return False
        return not self.max_tokens or self.count_tokens(full_text(title, text)) <= self.max_tokens


def windows(text: str, fits: Callable[[str], bool], max_words: int, overlap: int) -> list[str]:
    """Cut ``text`` at word boundaries into the longest windows for which ``fits(window)`` holds, each but the
    first starting ``overlap`` words before the end of the one before it.

    Args:
        text: what to cut; its spacing and line breaks inside a window are kept.
        fits: whether a window may be this long (a window of one word is taken even when it does not fit).
        max_words: most words per window, 0 for no word cap (then ``fits`` alone decides).
        overlap: words repeated from the window before; at most half of a window shorter than ``max_words``, so
            that the cut always moves on.
    """
    spans = [match.span() for match in WORD.finditer(text)]
    if not spans:
        return []

    def piece(start: int, end: int) -> str:
        return text[spans[start][0] : spans[end - 1][1]]

    found, start = [], 0
    while True:
        longest = len(spans) - start if not max_words else min(max_words, len(spans) - start)
        # The longest fitting window, by bisection: a window one word longer never has fewer tokens.
        low, high = 1, longest
        while low < high:
            middle = (low + high + 1) // 2
            if fits(piece(start, start + middle)):
                low = middle
            else:
                high = middle - 1
        end = start + low
        found.append(piece(start, end))
        if end == len(spans):
            return found
        size = end - start
        kept = overlap if size == max_words else min(overlap, size // 2)
        start = max(end - kept, start + 1)
