"""HTML to plain text that keeps the document's structure: headings become Markdown ``#`` lines.

Later steps (section pairs, chunking by heading) then read HTML, Markdown and reStructuredText the same way.
Uses only the standard library's tolerant parser, so broken markup never stops ingestion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

HTML_HEADING = re.compile(r"<h[1-6][\s>]", re.IGNORECASE)
SKIPPED = {"script", "style", "noscript", "template", "svg", "nav", "head"}
"""Elements whose text is not document content (the <title> inside <head> is read separately)."""
BLOCKS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
    "form", "header", "hr", "li", "main", "ol", "p", "section", "table", "tr", "ul",
}
HEADINGS = {f"h{level}": level for level in range(1, 7)}
ENDS_TITLE = (BLOCKS | set(HEADINGS) | SKIPPED | {"body", "pre"}) - {"head"}
"""Start tags that end a <title> left open (a title holds text only); so do </head>, </body> and </html>."""
UNCLOSED = re.compile(r"<(?P<kind>!--|!|\?)")
UNCLOSED_KINDS = {"!--": "a comment ('<!--' without '-->')", "!": "a '<!' declaration", "?": "a '<?' instruction"}
"""Markup that runs to the end of the file when it is never closed (a lone '<' in text stays text)."""


@dataclass(frozen=True)
class HtmlText:
    """What :func:`html_to_text` extracts."""

    title: str
    """The <title> element's text ('' when there is none)."""
    text: str
    """The visible text, one block per line, headings as '## Heading', <pre> blocks fenced with ```."""
    problems: tuple[str, ...] = ()
    """Broken markup that changed what was extracted (an unclosed <title>, comment or tag), in words."""


def looks_like_html(text: str) -> bool:
    """True when the text has HTML heading tags, the structure :func:`html_to_text` turns into sections."""
    return bool(HTML_HEADING.search(text))


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip_depth = 0
        self.in_title = False
        self.title_parts: list[str] = []
        self.pre_depth = 0
        self.heading_level = 0
        self.problems: list[str] = []

    def _end_title(self, at: str) -> None:
        self.in_title = False
        self.problems.append(f"<title> is not closed: the title ends at {at}")

    def _end_block(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.current)).strip()
        if text:
            self.lines.append(f"{'#' * self.heading_level} {text}" if self.heading_level else text)
        self.current = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.in_title and tag in ENDS_TITLE:
            self._end_title(f"<{tag}>")
        if tag == "title":
            self.in_title = True
        elif tag in SKIPPED:
            self.skip_depth += 1
        elif self.skip_depth:
            return
        elif tag in HEADINGS:
            self._end_block()
            self.heading_level = HEADINGS[tag]
        elif tag == "pre":
            self._end_block()
            self.pre_depth += 1
            self.lines.append("```")
        elif tag in BLOCKS:
            self._end_block()
            if tag == "li":
                self.current.append("- ")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in BLOCKS and not self.skip_depth:
            self._end_block()

    def handle_endtag(self, tag: str) -> None:
        if self.in_title and tag in ("head", "body", "html"):
            self._end_title(f"</{tag}>")
        if tag == "title":
            self.in_title = False
        elif tag in SKIPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif self.skip_depth:
            return
        elif tag in HEADINGS:
            self._end_block()
            self.heading_level = 0
        elif tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
            # Code keeps its own line breaks and indentation.
            self.lines.append("".join(self.current).strip("\n"))
            self.lines.append("```")
            self.current = []
        elif tag in BLOCKS:
            self._end_block()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        elif not self.skip_depth:
            self.current.append(data)

    def close(self) -> None:
        # What the parser still holds at the end is a construct that never ended. A browser reads an unclosed
        # comment to the end of the file and shows none of it; the standard parser would emit it as text.
        unclosed = UNCLOSED.match(self.rawdata)
        if unclosed and not self.cdata_elem:
            kind = UNCLOSED_KINDS[unclosed.group("kind")]
            self.problems.append(f"{kind} is not closed: the last {len(self.rawdata)} characters are left out")
            self.rawdata = ""
        super().close()
        if self.in_title:
            # Nothing ended the title: what it swallowed is the text (a page's title is never all of it).
            self.in_title = False
            self.problems.append("<title> is not closed: its text is read as the page's text")
            self.current.extend(self.title_parts)
            self.title_parts = []


def html_to_text(html: str) -> HtmlText:
    """Extract the title and the visible, structured text of an HTML page or fragment."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    collector._end_block()
    title = re.sub(r"\s+", " ", "".join(collector.title_parts)).strip()
    return HtmlText(title=title, text="\n".join(collector.lines).strip(), problems=tuple(collector.problems))
