"""Training pairs mined from the structure of documents alone: titles, headed sections, first sentences."""

from __future__ import annotations

import re

from embedft.core import Document, Pair
from embedft.corpus import split_sections

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")


def title_pairs(corpus: dict[str, Document]) -> list[Pair]:
    """(title, text) for every document with a title."""
    return [Pair(doc.title, doc.text, doc.id, "title") for doc in corpus.values() if doc.title]


def section_pairs(corpus: dict[str, Document]) -> list[Pair]:
    """(title: heading, section text) for each headed section (Markdown, HTML or reST) of each document."""
    pairs = []
    for doc in corpus.values():
        for heading, body in split_sections(doc.text):
            anchor = f"{doc.title}: {heading}" if doc.title else heading
            pairs.append(Pair(anchor, body, doc.id, "section"))
    return pairs


def first_sentence_pairs(corpus: dict[str, Document]) -> list[Pair]:
    """(first sentence, the rest) for documents that have no title."""
    pairs = []
    for doc in corpus.values():
        if doc.title:
            continue
        parts = SENTENCE_END.split(doc.text.strip(), maxsplit=1)
        if len(parts) == 2:
            pairs.append(Pair(parts[0], parts[1], doc.id, "first_sentence"))
    return pairs
