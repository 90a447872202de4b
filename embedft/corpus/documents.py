"""A folder of documents (.md, .mdx, .html, .rst, .txt) as corpus passages with stable, path-derived ids.

Each file is parsed into a title and headed sections (Markdown and MDX lose their markup first:
embedft/corpus/markdown_text.py), then cut into passages ("chunks") by heading or by length, with overlap, as
``ingest`` params say, each within a word cap and the model's token window (embedft/corpus/passage_size.py).
Headings of every format are written as Markdown ``#`` lines in the passage text, so the section pairs of
`synthesize` work the same for all formats.

Ids: a file kept whole has its path relative to the folder as id (``guide/install.md``); a file cut into n passages
has ids ``guide/install.md#1`` .. ``#n``. The same file and params always give the same ids.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from embedft.config import IngestParams
from embedft.core import DataFileError, Document, read_lines
from embedft.corpus.html_text import html_to_text
from embedft.corpus.markdown_text import clean_markdown, markup_counts, unfence_code
from embedft.corpus.passage_size import PassageLimit, full_text, windows, word_count
from embedft.corpus.sections import Section, parse_sections

FORMATS = {".md": "markdown", ".markdown": "markdown", ".mdx": "markdown", ".html": "html", ".htm": "html", ".rst": "rst", ".txt": "text"}
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)\n---[ \t]*(\n|\Z)", re.DOTALL)
FRONT_MATTER_TITLE = re.compile(r"^title:\s*(?P<title>.+?)\s*$", re.MULTILINE)
CHUNK_ID = re.compile(r"^(?P<path>.+)#(?P<number>[1-9][0-9]*)$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
"""Control characters (C0 and C1) other than tab, line breaks and form feed."""
TEXT_SPACE = re.compile(r"[ \t\n\r\x0c]")
CONTROL_SHARE = 0.25
"""A file whose non-space characters are more than this share control characters is not text (a UTF-16 file read
as UTF-8 has a NUL after every letter: half of them)."""
OUTLIER_RATIO = 100
"""A document is a length outlier when it is this many times longer than the median document..."""
OUTLIER_MIN_CHARACTERS = 10_000
"""... and at least this long (so a corpus of one-line documents does not flag a paragraph)."""
OUTLIERS_LISTED = 20

logger = logging.getLogger(__name__)


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
    skipped_documents: dict[str, str] = field(default_factory=dict)
    """Document files (and links) that gave no passage, by path in the folder, with the reason."""
    markup_before: Counter = field(default_factory=Counter)
    """:func:`markup_counts` of the passages the files would give without removing their markup."""
    markup_after: Counter = field(default_factory=Counter)
    """:func:`markup_counts` of the passages written."""

    def as_metrics(self, documents: int) -> dict[str, int | dict[str, int] | dict[str, str]]:
        metrics: dict[str, int | dict[str, int] | dict[str, str]] = {
            "documents": documents,
            "files": dict(sorted(self.files.items())),
            "empty_files": self.empty_files,
            "chunked_files": self.chunked_files,
            "skipped_files": sum(self.skipped.values()),
            "markup": {"before_cleaning": dict(self.markup_before), "after_cleaning": dict(self.markup_after)},
        }
        if self.skipped_documents:
            metrics["skipped_documents"] = dict(sorted(self.skipped_documents.items()))
        return metrics


@dataclass(frozen=True)
class LengthOutliers:
    """Documents far longer than the rest (they dominate BM25's average length and are cut by the model's window)."""

    median_characters: float
    threshold_characters: int
    documents: dict[str, int]
    """Outlier id -> length in characters, longest first."""

    def as_report(self) -> dict:
        return {
            "count": len(self.documents),
            "median_characters": round(self.median_characters),
            "threshold_characters": self.threshold_characters,
            "longest": dict(list(self.documents.items())[:OUTLIERS_LISTED]),
        }

    def describe(self) -> str:
        """A one-line warning naming the outliers ('' when there are none)."""
        if not self.documents:
            return ""
        shown = ", ".join(f"'{doc_id}' ({length:,} characters)" for doc_id, length in list(self.documents.items())[:5])
        more = f" and {len(self.documents) - 5} more" if len(self.documents) > 5 else ""
        count = f"{len(self.documents)} documents are" if len(self.documents) > 1 else "1 document is"
        return (f"{count} over {OUTLIER_RATIO} times the median length "
                f"({round(self.median_characters):,} characters): {shown}{more}. They shift BM25's average document "
                "length and the model reads only their beginning: check that each is meant to be one document")


@dataclass(frozen=True)
class ParsedDocument:
    """A file's title and sections, before chunking."""

    title: str
    sections: list[Section]
    problems: tuple[str, ...] = ()
    """Broken markup that changed what was read (see :class:`embedft.corpus.html_text.HtmlText`)."""


def length_outliers(corpus: dict[str, Document]) -> LengthOutliers:
    """The documents (title and text) over :data:`OUTLIER_RATIO` times the median length and at least
    :data:`OUTLIER_MIN_CHARACTERS` characters long."""
    lengths = {doc_id: len(doc.full_text) for doc_id, doc in corpus.items()}
    median = statistics.median(lengths.values()) if lengths else 0.0
    threshold = max(OUTLIER_MIN_CHARACTERS, int(median * OUTLIER_RATIO))
    found = sorted(((doc_id, length) for doc_id, length in lengths.items() if length > threshold), key=lambda i: (-i[1], i[0]))
    return LengthOutliers(median, threshold, dict(found))


def control_share(text: str) -> float:
    """The share of control characters (see :data:`CONTROL`) among the text's non-space characters."""
    visible = len(text) - len(TEXT_SPACE.findall(text))
    return len(CONTROL.findall(text)) / visible if visible else 0.0


def read_text_file(path: Path) -> str:
    """The file's text (UTF-8, BOM and CRLF tolerated); an invalid byte is reported with its line."""
    return "\n".join(line for _, line in read_lines(path))


def parse_document(text: str, kind: str, code_blocks: str | None = "keep") -> ParsedDocument:
    """Title and sections of one file's text.

    Args:
        text: the file's content.
        kind: 'markdown', 'html', 'rst' or 'text' (plain text has no headings and no title).
        code_blocks: Markdown's markup is removed, and the fenced code of Markdown (and HTML's <pre>) kept without
            its fences ('keep') or dropped ('drop') (``ingest.code_blocks``); None leaves the markup and fences in
            (to measure what cleaning removes).

    The title is the document's leading heading (one with no text before it); failing that, Markdown front
    matter's ``title:`` or HTML's <title>. The leading heading is removed from the sections: it is the title.
    """
    metadata_title, problems = "", ()
    if kind == "text":
        return ParsedDocument("", [Section(0, "", text.strip())])
    if kind == "html":
        extracted = html_to_text(text)
        metadata_title, text, problems = extracted.title, extracted.text, extracted.problems
        if code_blocks is not None:
            text = unfence_code(text, code_blocks)
    elif kind == "markdown":
        front = FRONT_MATTER.match(text)
        if front:
            found = FRONT_MATTER_TITLE.search(front.group("yaml"))
            metadata_title = found.group("title").strip("'\"") if found else ""
            text = text[front.end():]
        if code_blocks is not None:
            text = clean_markdown(text, code_blocks)
    sections = parse_sections(text)
    if len(sections) > 1 and not sections[0].body:
        leading = sections[1]
        return ParsedDocument(leading.heading, [Section(0, "", leading.body), *sections[2:]], problems)
    return ParsedDocument(metadata_title, sections, problems)


def render(section: Section) -> str:
    """A section as Markdown text: its heading as a '#' line (level 1 at least), then its body."""
    if not section.heading:
        return section.body
    heading = f"{'#' * max(section.level, 1)} {section.heading}"
    return f"{heading}\n{section.body}" if section.body else heading


def chunk_title(title: str, section: Section, first: bool) -> str:
    """The first passage carries the document title; later ones add the heading they start under."""
    if first or not section.heading:
        return title
    return f"{title}: {section.heading}" if title else section.heading


def chunk_document(document: ParsedDocument, settings: IngestParams, limit: PassageLimit | None = None) -> list[tuple[str, str]]:
    """Cut a parsed document into (title, text) passages, each within ``limit``.

    By heading: consecutive sections are packed into one passage while it stays within the limit; a section
    longer than that is cut into overlapping windows, each starting with the section's heading line. By length:
    the whole rendered text is cut into overlapping windows.

    Args:
        limit: the word and token caps; None: ``settings.max_chunk_words`` alone.
    """
    limit = limit or PassageLimit(max_words=settings.max_chunk_words)
    sections = [s for s in document.sections if s.heading or s.body]
    whole = "\n\n".join(render(s) for s in sections).strip()
    size, overlap = limit.max_words, settings.chunk_overlap_words
    if not whole:
        return []
    if limit.unlimited or limit.fits(document.title, whole):
        return [(document.title, whole)]
    if settings.chunk_by == "length":
        return [(document.title, window) for window in windows(whole, lambda w: limit.fits(document.title, w), size, overlap)]
    chunks: list[tuple[str, str]] = []
    packed: list[Section] = []

    def packed_title(first: Section) -> str:
        return chunk_title(document.title, first, not chunks)

    def flush() -> None:
        if packed:
            chunks.append((packed_title(packed[0]), "\n\n".join(render(s) for s in packed)))
            packed.clear()

    for section in sections:
        # A passage after the first carries the longer title ('Document: Heading'): sections are sized with it.
        title = chunk_title(document.title, section, False)
        if not limit.fits(title, render(section)):
            flush()
            heading_words = word_count(render(Section(section.level, section.heading, "")))
            body_words = max(size - heading_words, 1) if size else 0
            body_overlap = min(overlap, max(size - heading_words - 1, 0)) if size else overlap

            def fits(window: str, section: Section = section, title: str = title) -> bool:
                return limit.fits(title, render(Section(section.level, section.heading, window)))

            for window in windows(section.body, fits, body_words, body_overlap):
                piece = Section(section.level, section.heading, window)
                chunks.append((chunk_title(document.title, piece, not chunks), render(piece)))
            continue
        if packed and not limit.fits(packed_title(packed[0]), "\n\n".join(render(s) for s in [*packed, section])):
            flush()
        packed.append(section)
    flush()
    return chunks


def document_files(folder: Path) -> tuple[list[Path], Counter, dict[str, str]]:
    """The readable documents under ``folder`` (sorted, hidden files and folders left out), the other files'
    extensions, counted, and the links that are left out (to a folder, or to nothing), with the reason.

    A link to a file is read like the file; links to folders are not followed (a link cycle would never end)."""
    found, skipped, links = [], Counter(), {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink() and not path.is_file():
            target = path.readlink()
            reason = (f"a link to the folder {target}: links to folders are not followed, so its documents are left "
                      "out (link the files, or copy the folder in)" if path.is_dir() else f"a link to {target}, which does not exist")
            logger.warning("%s is %s", path, reason)
            links[relative.as_posix()] = reason
            continue
        if not path.is_file():
            continue
        if path.suffix.lower() in FORMATS:
            found.append(path)
        else:
            skipped[path.suffix.lower() or "(none)"] += 1
    return found, skipped, links


def log_links_outside(folder: Path, paths: list[Path], dataset_dir: Path | None) -> None:
    """Log the documents read from outside the dataset folder through a link (they are still read: the folder
    is the user's, and so are its links)."""
    root = (dataset_dir or folder).resolve()
    base = folder.resolve()
    if not base.is_relative_to(root):
        logger.warning("%s is %s, outside the dataset folder %s: its documents are read from there", folder,
                       f"a link to {base}" if folder.is_symlink() else f"at {base}", dataset_dir)
        root = base
    for path in paths:
        target = path.resolve()
        if not target.is_relative_to(root):
            logger.warning("%s is a link to %s, outside the dataset folder %s: it is read as a document", path, target,
                           dataset_dir or folder)


def read_document_folder(folder: Path, settings: IngestParams, dataset_dir: Path | None = None,
                         limit: PassageLimit | None = None) -> tuple[dict[str, Document], FolderReport]:
    """Every document in ``folder`` as passages, in path order, with path-derived ids.

    Args:
        folder: the documents.
        settings: how to cut them into passages and what to do with Markdown's code blocks.
        dataset_dir: the dataset folder holding ``folder`` (``data.dir``); documents that links bring in from
            outside it are logged. ``None``: ``folder`` itself.
        limit: the word and token caps of a passage; None: ``settings.max_chunk_words`` alone.

    Files that give no passage (no text once parsed) are named in the log and in the report. Broken HTML markup
    that changed what was read is logged with the file. The report counts the passages holding markup, as written
    and as they would be had Markdown kept its markup.

    Raises:
        DataFileError: the folder holds no document of a known type, a file is not valid UTF-8, or a file is mostly
            control characters (not text: say, UTF-16 or a binary file with a text extension).
    """
    paths, skipped, links = document_files(folder)
    report = FolderReport(skipped=skipped, skipped_documents=links)
    if not paths:
        kinds = ", ".join(sorted(FORMATS))
        raise DataFileError(folder, f"no documents found (looked for {kinds} files)")
    log_links_outside(folder, paths, dataset_dir)
    corpus: dict[str, Document] = {}
    empty: list[str] = []
    for path in paths:
        kind = FORMATS[path.suffix.lower()]
        report.files[kind] += 1
        doc_id = path.relative_to(folder).as_posix()
        text = read_text_file(path)
        share = control_share(text)
        if share > CONTROL_SHARE:
            raise DataFileError(
                path, f"{share:.0%} of its characters are control characters such as NUL: this is not UTF-8 text. Save "
                "it as UTF-8 (a UTF-16 file has a NUL after every letter), or, if it is not a document, move it out of "
                f"{folder} or give it another extension")
        parsed = parse_document(text, kind, settings.code_blocks)
        for problem in parsed.problems:
            logger.warning("%s: %s", path, problem)
        chunks = chunk_document(parsed, settings, limit)
        raw = chunk_document(parse_document(text, kind, None), settings, limit) if kind in ("markdown", "html") else chunks
        report.markup_before.update(markup_counts(full_text(title, passage) for title, passage in raw))
        report.markup_after.update(markup_counts(full_text(title, passage) for title, passage in chunks))
        if not chunks:
            report.empty_files += 1
            report.skipped_documents[doc_id] = "no text" + (f" ({'; '.join(parsed.problems)})" if parsed.problems else "")
            empty.append(doc_id)
            continue
        report.chunked_files += len(chunks) > 1
        for number, (title, text) in enumerate(chunks, start=1):
            chunk_id = doc_id if len(chunks) == 1 else f"{doc_id}#{number}"
            corpus[chunk_id] = Document(chunk_id, title.strip(), text.strip())
    if not corpus:
        raise DataFileError(folder, "every document in the folder is empty")
    if empty:
        files, have = (f"{len(empty)} files", "have") if len(empty) > 1 else ("1 file", "has")
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        logger.warning("%s under %s %s no text and %s left out (see skipped_documents in the ingest report): %s%s", files,
                       folder, have, "are" if len(empty) > 1 else "is", ", ".join(empty[:10]), more)
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
