"""Markdown and MDX as the text a reader sees: markup that fills a model's token window and BM25's index but says
nothing is removed, the words it wraps are kept.

What goes: inline HTML and JSX tags (their text stays: ``<abbr title="...">API</abbr>`` is ``API``), HTML and MDX
comments, MDX ``import`` / ``export`` lines, link targets (``[text](url)`` and reference links are their text,
reference definitions go), image syntax (``![alt](src)`` is its alt text), the angle brackets of autolinks, heading
ids (``## Title {#id}``; an ``<h2>`` line is a ``##`` heading), Docusaurus admonition fences (``:::tip``; their
title stays), table rule rows and HTML entities (decoded). Fenced code keeps its lines without the ``` / ~~~
markers, indented as Markdown's indented code (so a ``# comment`` in it never reads as a heading), or is dropped, as
``ingest.code_blocks`` says. Headings stay Markdown ``#`` lines, the structure that sections are cut at. Inline code
spans are kept as they are.

:func:`markup_counts` measures what is left: the passages that still hold each kind of markup.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable

FENCE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<marker>`{3,}|~{3,})")
CODE_INDENT = "    "
"""Markdown's indented code block: kept code reads as code, never as a heading."""
INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
HTML_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.DOTALL)
MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.DOTALL)
MDX_STATEMENT = re.compile(r"^(import[ \t]+(?:[\w*{][^\n]*?[ \t]+from[ \t]+)?['\"][^'\"\n]+['\"];?"
                           r"|export[ \t]+(?:const|let|var|function|default|\{)[^\n]*)[ \t]*$", re.MULTILINE)
TAG = re.compile(r"</?[A-Za-z][\w.:-]*(?:\s(?:[^<>\"'{}]|\"[^\"]*\"|'[^']*'|\{[^{}]*\})*)?/?>")
"""An HTML or JSX start, end or self-closing tag, over lines, with quoted or {expression} attributes."""
IMAGE = re.compile(r"!\[(?P<alt>[^\]\n]*)\](?:\([^)\n]*\)|\[[^\]\n]*\])")
LINK_TITLE = r"(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?"
LINK = re.compile(r"\[(?P<text>[^\]\n]*)\]\((?:<[^>\n]*>|[^)\s]*(?:\([^)\s]*\)[^)\s]*)*)" + LINK_TITLE + r"[ \t]*\)")
REFERENCE_LINK = re.compile(r"\[(?P<text>[^\]\n]+)\]\[[^\]\n]*\]")
REFERENCE_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*\S+" + LINK_TITLE + r"[ \t]*(?:\n|\Z)", re.MULTILINE)
AUTOLINK = re.compile(r"<(?P<target>(?:https?|ftp|mailto):[^<>\s]+|[\w.+-]+@[\w-]+\.[\w.-]+)>")
HEADING_ID = re.compile(r"^(?P<heading>[ \t]{0,3}#{1,6}[ \t].*?)[ \t]*\{#[\w.:-]+\}[ \t]*$", re.MULTILINE)
ADMONITION = re.compile(r"^[ \t]{0,3}:{3,}[ \t]*(?:[\w-]+)?[ \t]*(?:\[(?P<bracketed>[^\]\n]*)\]|(?P<title>[^\n]*?))?[ \t]*$",
                        re.MULTILINE)
TABLE_RULE = re.compile(r"^(?=[^\n]*\|)[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*(?:\n|\Z)", re.MULTILINE)
"""A table's rule row (``|---|:---:|``); a line of dashes alone is a rule or a heading's underline, and stays."""
HTML_HEADING_LINE = re.compile(r"^[ \t]*<h(?P<level>[1-6])\b[^>\n]*>(?P<text>[^\n]*?)</h(?P=level)>[ \t]*$", re.MULTILINE | re.IGNORECASE)
LINE_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
BLANK_RUNS = re.compile(r"\n{3,}")

MARKUP = {
    "tags": TAG,
    "link_targets": re.compile(r"\]\([^)\n]*\)|\]\[[^\]\n]*\]"),
    "images": re.compile(r"!\["),
    "fences": re.compile(r"^[ \t]{0,3}(?:`{3,}|~{3,})", re.MULTILINE),
    "html_comments": re.compile(r"<!--"),
    "mdx_statements": MDX_STATEMENT,
    "entities": re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);"),
}
"""Markup a passage may still hold, by kind, as :func:`markup_counts` looks for it."""


def _clean_prose(text: str) -> str:
    """Markup removed from text outside fenced code (inline code spans are left as they are)."""
    kept: list[str] = []

    def protect(match: re.Match) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = INLINE_CODE.sub(protect, text)
    text = HTML_COMMENT.sub("", text)
    text = MDX_COMMENT.sub("", text)
    text = MDX_STATEMENT.sub("", text)
    text = REFERENCE_DEFINITION.sub("", text)
    text = IMAGE.sub(lambda m: m.group("alt"), text)
    text = LINK.sub(lambda m: m.group("text"), text)
    text = REFERENCE_LINK.sub(lambda m: m.group("text"), text)
    text = AUTOLINK.sub(lambda m: m.group("target"), text)
    text = HTML_HEADING_LINE.sub(lambda m: f"{'#' * int(m.group('level'))} {m.group('text')}", text)
    text = LINE_BREAK_TAG.sub("\n", text)
    text = TAG.sub("", text)
    text = HEADING_ID.sub(lambda m: m.group("heading"), text)
    text = ADMONITION.sub(lambda m: (m.group("bracketed") or m.group("title") or "").strip(), text)
    text = TABLE_RULE.sub("", text)
    text = html.unescape(text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)


def split_fences(text: str) -> list[tuple[bool, list[str]]]:
    """The text as runs of lines, each (is fenced code, lines); a code run holds its lines without the fences.

    A fence closes at a line of the same character, at least as long, with nothing after it; one never closed
    runs to the end of the text (as CommonMark reads it)."""
    runs: list[tuple[bool, list[str]]] = [(False, [])]
    opened: str | None = None
    for line in text.split("\n"):
        found = FENCE.match(line)
        if opened is None and found:
            opened = found.group("marker")
            runs.append((True, []))
        elif opened is not None and found and found.group("marker")[0] == opened[0] and len(found.group("marker")) >= len(opened) \
                and not line[found.end():].strip():
            opened = None
            runs.append((False, []))
        else:
            runs[-1][1].append(line)
    return [(code, lines) for code, lines in runs if lines or not code]


def _without_fences(text: str, code_blocks: str, clean_prose: bool) -> str:
    parts: list[str] = []
    for code, lines in split_fences(text):
        if not code:
            parts.append(_clean_prose("\n".join(lines)) if clean_prose else "\n".join(lines))
        elif code_blocks == "keep":
            body = "\n".join(f"{CODE_INDENT}{line}" if line.strip() else "" for line in lines).strip("\n")
            if body:
                parts.append(f"\n{body}\n")
    return BLANK_RUNS.sub("\n\n", "\n".join(parts)).strip()


def clean_markdown(text: str, code_blocks: str = "keep") -> str:
    """The Markdown or MDX ``text`` with its markup removed (see the module's docstring).

    Args:
        text: the document, front matter already taken off.
        code_blocks: 'keep': fenced code stays, without its fence lines, indented four spaces; 'drop': it goes.
    """
    return _without_fences(text, code_blocks, clean_prose=True)


def unfence_code(text: str, code_blocks: str = "keep") -> str:
    """Only the fenced code of ``text`` handled as in :func:`clean_markdown` (for the fences that html_to_text writes
    around <pre> blocks); the rest is left as it is."""
    return _without_fences(text, code_blocks, clean_prose=False)


def markup_counts(texts: Iterable[str]) -> dict[str, int]:
    """How many of ``texts`` hold markup: ``passages`` in all, ``with_markup`` (any kind), and one count per kind
    of :data:`MARKUP` (a passage with two kinds counts under each)."""
    counts: Counter = Counter()
    for text in texts:
        counts["passages"] += 1
        found = [kind for kind, pattern in MARKUP.items() if pattern.search(text)]
        counts["with_markup"] += bool(found)
        counts.update(found)
    return {"passages": counts["passages"], "with_markup": counts["with_markup"], **{kind: counts[kind] for kind in MARKUP}}
