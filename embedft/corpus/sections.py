"""Headings and the sections under them, in Markdown, reStructuredText and HTML: how `ingest` cuts documents at
their headings, and what `synthesize`'s section pairs are made of."""

from __future__ import annotations

import re
from dataclasses import dataclass

from embedft.corpus.html_text import html_to_text, looks_like_html

MARKDOWN_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
RST_UNDERLINE = re.compile(r"^\s*([=\-~^\"'`#*+:.])\1{2,}\s*$")
CODE_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


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
