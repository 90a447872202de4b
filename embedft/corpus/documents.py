"""A folder of documents (.md, .html, .rst, .txt) as corpus passages with stable, path-derived ids.

Each file is parsed into a title and headed sections, then cut into passages ("chunks") by heading or by
length, with overlap, as ``ingest`` params say. Headings of every format are written as Markdown ``#`` lines
in the passage text, so the section pairs of `synthesize` work the same for all formats.

Ids: a file kept whole has its path relative to the folder as id (``guide/install.md``); a file cut into n
passages has ids ``guide/install.md#1`` .. ``#n``. The same file and params always give the same ids.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from embedft.config import IngestParams
from embedft.core import DataFileError, Document, read_lines
from embedft.corpus.html_text import html_to_text
from embedft.corpus.sections import Section, parse_sections

FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".rst": "rst", ".txt": "text"}
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)\n---[ \t]*(\n|\Z)", re.DOTALL)
FRONT_MATTER_TITLE = re.compile(r"^title:\s*(?P<title>.+?)\s*$", re.MULTILINE)
WORD = re.compile(r"\S+")
CHUNK_ID = re.compile(r"^(?P<path>.+)#(?P<number>[1-9][0-9]*)$")


@dataclass
class FolderReport:
    """Counts of what ingesting a folder found (for the stage's metrics and message)."""

    files: Counter = field(default_factory=Counter)
    """Files read, by format."""
    skipped: Counter = field(default_factory=Counter)
    """Files of other types, by extension, left out."""
    empty_files: int = 0
    chunked_files: int = 0
    """Files cut into more than one passage."""

    def as_metrics(self, documents: int) -> dict[str, int | dict[str, int]]:
        return {
            "documents": documents,
            "files": dict(sorted(self.files.items())),
            "empty_files": self.empty_files,
            "chunked_files": self.chunked_files,
            "skipped_files": sum(self.skipped.values()),
        }


@dataclass(frozen=True)
class ParsedDocument:
    """A file's title and sections, before chunking."""

    title: str
    sections: list[Section]


def read_text_file(path: Path) -> str:
    """The file's text (UTF-8, BOM and CRLF tolerated); an invalid byte is reported with its line."""
    return "\n".join(line for _, line in read_lines(path))


def parse_document(text: str, kind: str) -> ParsedDocument:
    """Title and sections of one file's text.

    Args:
        text: the file's content.
        kind: 'markdown', 'html', 'rst' or 'text' (plain text has no headings and no title).

    The title is the document's leading heading (one with no text before it); failing that, Markdown front
    matter's ``title:`` or HTML's <title>. The leading heading is removed from the sections: it is the title.
    """
    metadata_title = ""
    if kind == "text":
        return ParsedDocument("", [Section(0, "", text.strip())])
    if kind == "html":
        extracted = html_to_text(text)
        metadata_title, text = extracted.title, extracted.text
    elif kind == "markdown":
        front = FRONT_MATTER.match(text)
        if front:
            found = FRONT_MATTER_TITLE.search(front.group("yaml"))
            metadata_title = found.group("title").strip("'\"") if found else ""
            text = text[front.end():]
    sections = parse_sections(text)
    if len(sections) > 1 and not sections[0].body:
        leading = sections[1]
        return ParsedDocument(leading.heading, [Section(0, "", leading.body), *sections[2:]])
    return ParsedDocument(metadata_title, sections)


def render(section: Section) -> str:
    """A section as Markdown text: its heading as a '#' line (level 1 at least), then its body."""
    if not section.heading:
        return section.body
    heading = f"{'#' * max(section.level, 1)} {section.heading}"
    return f"{heading}\n{section.body}" if section.body else heading


def word_count(text: str) -> int:
    return len(WORD.findall(text))


def word_windows(text: str, size: int, overlap: int) -> list[str]:
    """Cut text into windows of ``size`` words, each starting ``size - overlap`` words after the one before.

    The original spacing and line breaks inside a window are kept. Text of at most ``size`` words is one window.
    """
    spans = [match.span() for match in WORD.finditer(text)]
    if not spans:
        return []
    windows, start = [], 0
    while True:
        end = min(start + size, len(spans))
        windows.append(text[spans[start][0] : spans[end - 1][1]])
        if end == len(spans):
            return windows
        start += size - overlap


def chunk_title(title: str, section: Section, first: bool) -> str:
    """The first passage carries the document title; later ones add the heading they start under."""
    if first or not section.heading:
        return title
    return f"{title}: {section.heading}" if title else section.heading


def chunk_document(document: ParsedDocument, settings: IngestParams) -> list[tuple[str, str]]:
    """Cut a parsed document into (title, text) passages.

    By heading: consecutive sections are packed into one passage while it stays within
    ``max_chunk_words``; a section longer than that is cut into overlapping windows, each starting with the
    section's heading line. By length: the whole rendered text is cut into overlapping windows.
    """
    sections = [s for s in document.sections if s.heading or s.body]
    whole = "\n\n".join(render(s) for s in sections).strip()
    size, overlap = settings.max_chunk_words, settings.chunk_overlap_words
    if not whole:
        return []
    if size == 0 or word_count(whole) <= size:
        return [(document.title, whole)]
    if settings.chunk_by == "length":
        return [(document.title, window) for window in word_windows(whole, size, overlap)]
    chunks: list[tuple[str, str]] = []
    packed: list[Section] = []

    def flush() -> None:
        if packed:
            chunks.append((chunk_title(document.title, packed[0], not chunks), "\n\n".join(render(s) for s in packed)))
            packed.clear()

    for section in sections:
        words = word_count(render(section))
        if words > size:
            flush()
            heading_words = word_count(render(Section(section.level, section.heading, "")))
            for window in word_windows(section.body, max(size - heading_words, 1), min(overlap, max(size - heading_words - 1, 0))):
                piece = Section(section.level, section.heading, window)
                chunks.append((chunk_title(document.title, piece, not chunks), render(piece)))
            continue
        if packed and sum(word_count(render(s)) for s in packed) + words > size:
            flush()
        packed.append(section)
    flush()
    return chunks


def document_files(folder: Path) -> tuple[list[Path], Counter]:
    """The readable documents under ``folder`` (sorted, hidden files and folders left out) and the other
    files' extensions, counted."""
    found, skipped = [], Counter()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() in FORMATS:
            found.append(path)
        else:
            skipped[path.suffix.lower() or "(none)"] += 1
    return found, skipped


def read_document_folder(folder: Path, settings: IngestParams) -> tuple[dict[str, Document], FolderReport]:
    """Every document in ``folder`` as passages, in path order, with path-derived ids.

    Raises:
        DataFileError: the folder holds no document of a known type, or a file is not valid UTF-8.
    """
    paths, skipped = document_files(folder)
    report = FolderReport(skipped=skipped)
    if not paths:
        kinds = ", ".join(sorted(FORMATS))
        raise DataFileError(folder, f"no documents found (looked for {kinds} files)")
    corpus: dict[str, Document] = {}
    for path in paths:
        kind = FORMATS[path.suffix.lower()]
        report.files[kind] += 1
        chunks = chunk_document(parse_document(read_text_file(path), kind), settings)
        if not chunks:
            report.empty_files += 1
            continue
        report.chunked_files += len(chunks) > 1
        doc_id = path.relative_to(folder).as_posix()
        for number, (title, text) in enumerate(chunks, start=1):
            chunk_id = doc_id if len(chunks) == 1 else f"{doc_id}#{number}"
            corpus[chunk_id] = Document(chunk_id, title.strip(), text.strip())
    if not corpus:
        raise DataFileError(folder, "every document in the folder is empty")
    return corpus, report


def chunks_by_document(doc_ids: list[str]) -> dict[str, list[str]]:
    """Map each chunked file's path (``a.md``) to its passage ids (``a.md#1``, ...), for ids not themselves
    in the corpus; used to resolve references to a whole file, e.g. a search-log click on a page."""
    known = set(doc_ids)
    grouped: dict[str, list[str]] = {}
    for doc_id in doc_ids:
        match = CHUNK_ID.match(doc_id)
        if match and match.group("path") not in known:
            grouped.setdefault(match.group("path"), []).append(doc_id)
    return grouped
