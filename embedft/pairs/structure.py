"""Training pairs mined from the structure of documents alone: titles, headed sections, first sentences.

Also the section parser that `ingest` uses to cut documents at their headings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stages.data_io import Document
from stages.html_text import html_to_text, looks_like_html

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


@dataclass(frozen=True)
class Section:
    """A run of text under one heading; the text before the first heading has level 0 and no heading."""

    level: int
    heading: str
    body: str


def parse_sections(text: str) -> list[Section]:
    """Split text at its headings: Markdown ('## Heading'), reStructuredText (underlined, optionally overlined)
    and HTML (<h1>..<h6>, when the text holds such tags; the tags are then stripped from the bodies).

    Markdown levels are the number of '#'; reST levels follow the order in which adornment styles first
    appear, as reST defines them. Lines inside fenced code blocks are never headings.

    Returns:
        the preamble (level 0, heading '', possibly empty body) then one :class:`Section` per heading.
    """
    if looks_like_html(text):
        text = html_to_text(text).text
    lines = text.splitlines()
    sections: list[tuple[int, str, list[str]]] = [(0, "", [])]
    adornment_levels: dict[tuple[str, bool], int] = {}
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
            level = len(line.strip()) - len(line.strip().lstrip("#"))
            sections.append((level, markdown.group("title").strip(), []))
        elif underlined:
            overlined = index > 0 and bool(RST_UNDERLINE.match(lines[index - 1])) and lines[index - 1].strip() == lines[index + 1].strip()
            style = (lines[index + 1].strip()[0], overlined)
            level = adornment_levels.setdefault(style, len(adornment_levels) + 1)
            sections.append((level, line.strip(), []))
            index += 1
        elif overline:
            pass  # the overline of an over-and-underlined reST title belongs to the title, not the body above
        else:
            sections[-1][2].append(line)
        index += 1
    return [Section(level, heading, "\n".join(body).strip()) for level, heading, body in sections]


def split_sections(text: str) -> list[tuple[str, str]]:
    """(heading, section body) for each headed section; text before the first heading is not returned."""
    return [(section.heading, section.body) for section in parse_sections(text)[1:]]


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
