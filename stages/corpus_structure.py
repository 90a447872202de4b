"""Training pairs mined from the structure of documents alone: titles, headed sections, first sentences."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stages.data_io import Document

MARKDOWN_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
RST_UNDERLINE = re.compile(r"^\s*([=\-~^\"'`#*+:.])\1{2,}\s*$")
CODE_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")


@dataclass(frozen=True)
class Pair:
    """A training example: an anchor (query-like text), a positive passage, and where it came from."""

    anchor: str
    positive: str
    positive_id: str
    source: str

    def as_row(self) -> dict[str, str]:
        return {"anchor": self.anchor, "positive": self.positive, "positive_id": self.positive_id, "source": self.source}


def is_underlined_title(lines: list[str], index: int) -> bool:
    """True when ``lines[index]`` is text followed by a reST adornment line at least as long."""
    return (
        index + 1 < len(lines)
        and bool(lines[index].strip())
        and not RST_UNDERLINE.match(lines[index])
        and bool(RST_UNDERLINE.match(lines[index + 1]))
        and len(lines[index + 1].strip()) >= len(lines[index].strip())
    )


def split_sections(text: str) -> list[tuple[str, str]]:
    """Split text at Markdown ('# Heading') and reStructuredText (underlined) headings.

    Returns:
        (heading, section body) for each headed section; text before the first heading is not returned.
    """
    lines = text.splitlines()
    sections: list[tuple[str, list[str]]] = []
    in_fence = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if CODE_FENCE.match(line):
            in_fence = not in_fence
        markdown = not in_fence and MARKDOWN_HEADING.match(line)
        underlined = not in_fence and is_underlined_title(lines, index)
        overline = not in_fence and RST_UNDERLINE.match(line) and is_underlined_title(lines, index + 1)
        if markdown:
            sections.append((markdown.group("title").strip(), []))
        elif underlined:
            sections.append((line.strip(), []))
            index += 1
        elif overline:
            pass  # the overline of an over-and-underlined reST title belongs to the title, not the body above
        elif sections:
            sections[-1][1].append(line)
        index += 1
    return [(heading, "\n".join(body).strip()) for heading, body in sections]


def title_pairs(corpus: dict[str, Document]) -> list[Pair]:
    """(title, text) for every document with a title."""
    return [Pair(doc.title, doc.text, doc.id, "title") for doc in corpus.values() if doc.title]


def section_pairs(corpus: dict[str, Document]) -> list[Pair]:
    """(title + heading, section text) for each headed section of each document."""
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
