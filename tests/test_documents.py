"""A folder of .md/.html/.rst/.txt documents as corpus passages: parsing, stable path ids, chunking with overlap,
and the `ingest` stage on such a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from embedft.config.params import IngestParams
from embedft.core.errors import DataFileError
from embedft.corpus.documents import ParsedDocument, chunk_document, chunks_by_document, parse_document, read_document_folder
from embedft.corpus.html_text import html_to_text
from embedft.corpus.passage_size import windows, word_count
from embedft.corpus.sections import Section
from embedft.pairs.structure import section_pairs

MARKDOWN = """---
layout: page
title: "Front matter title"
---
# Install guide

How to install the tool.

## With pip

Run pip install tool.

## From source

Clone the repository and build it.
"""
HTML = """<!doctype html><html><head><title>Page title | Site</title><style>p {color: red}</style>
<script>var tracking = 1;</script></head>
<body><nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<h1>Configuration</h1><p>The settings &amp; options live in <code>config.toml</code>.</p>
<h2 id="colours">Colours</h2><p>Pick a theme.<br>Dark is the default.</p>
<ul><li>dark</li><li>light</li></ul>
<pre># a comment, not a heading
theme = "dark"</pre>
</body></html>"""
RST = """=========
Reference
=========

Intro paragraph.

Functions
---------

``run()`` runs it.
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def settings(**overrides) -> IngestParams:
    return IngestParams(**{"max_chunk_words": 0, **overrides})


def test_markdown_title_is_the_leading_heading_and_front_matter_is_dropped():
    parsed = parse_document(MARKDOWN, "markdown")
    assert parsed.title == "Install guide"
    assert parsed.sections == [
        Section(0, "", "How to install the tool."),
        Section(2, "With pip", "Run pip install tool."),
        Section(2, "From source", "Clone the repository and build it."),
    ]
    no_heading = parse_document("---\ntitle: 'From the front matter'\n---\nJust text.\n", "markdown")
    assert no_heading == ParsedDocument("From the front matter", [Section(0, "", "Just text.")])


def test_html_headings_become_markdown_and_clutter_is_left_out():
    extracted = html_to_text(HTML)
    assert extracted.title == "Page title | Site"
    assert extracted.text.splitlines() == [
        "# Configuration", "The settings & options live in config.toml .".replace(" .", "."), "## Colours", "Pick a theme.",
        "Dark is the default.", "- dark", "- light", "```", "# a comment, not a heading", 'theme = "dark"', "```",
    ]
    parsed = parse_document(HTML, "html")
    assert parsed.title == "Configuration"  # the leading <h1>, cleaner than <title>
    assert [s.heading for s in parsed.sections] == ["", "Colours"]  # the # inside <pre> is code, not a heading
    assert "tracking" not in str(parsed) and "Home" not in str(parsed)
    assert parse_document("<p>No headings here.</p>", "html") == ParsedDocument("", [Section(0, "", "No headings here.")])


def test_rst_overlined_title_and_sections():
    parsed = parse_document(RST, "rst")
    assert parsed.title == "Reference"
    assert parsed.sections == [Section(0, "", "Intro paragraph."), Section(2, "Functions", "``run()`` runs it.")]


def test_plain_text_has_no_title_and_no_headings():
    parsed = parse_document("# not a heading in a .txt\nText.", "text")
    assert parsed == ParsedDocument("", [Section(0, "", "# not a heading in a .txt\nText.")])


def word_windows(text: str, size: int, overlap: int) -> list[str]:
    """Windows of ``size`` words (a word cap alone)."""
    return windows(text, lambda window: word_count(window) <= size, size, overlap)


def test_word_windows_overlap_and_cover_everything():
    text = " ".join(f"w{i}" for i in range(23))
    windows = word_windows(text, 10, 3)
    assert [w.split() for w in windows] == [
        [f"w{i}" for i in range(0, 10)], [f"w{i}" for i in range(7, 17)], [f"w{i}" for i in range(14, 23)],
    ]
    for before, after in zip(windows, windows[1:]):
        assert before.split()[-3:] == after.split()[:3]
    assert word_windows("one two\nthree", 10, 3) == ["one two\nthree"]  # line breaks kept
    assert word_windows("   ", 10, 3) == []
    assert word_windows(text, 10, 0)[1].split()[0] == "w10"


def test_chunk_by_heading_packs_small_sections_and_windows_long_ones():
    long_body = " ".join(f"x{i}" for i in range(30))
    document = ParsedDocument("Doc", [
        Section(0, "", "Intro words here."),                    # 3 words
        Section(2, "Small", "four words of text"),              # 2 + 4 words
        Section(2, "Long", long_body),                          # 2 + 30 words: cut
        Section(2, "Tail", "last bit"),
    ])
    chunks = chunk_document(document, settings(max_chunk_words=12, chunk_overlap_words=2))
    assert chunks[0] == ("Doc", "Intro words here.\n\n## Small\nfour words of text")
    long_chunks = chunks[1:-1]
    assert all(title == "Doc: Long" and text.startswith("## Long\n") for title, text in long_chunks)
    bodies = [text.split("\n", 1)[1].split() for _, text in long_chunks]
    assert all(len(body) <= 10 for body in bodies)  # 12 words with the 2-word heading line
    assert bodies[0][:2] == ["x0", "x1"] and bodies[-1][-1] == "x29"
    for before, after in zip(bodies, bodies[1:]):
        assert before[-2:] == after[:2]
    assert chunks[-1] == ("Doc: Tail", "## Tail\nlast bit")


def test_chunk_by_length_ignores_headings():
    document = parse_document(MARKDOWN, "markdown")
    chunks = chunk_document(document, settings(chunk_by="length", max_chunk_words=8, chunk_overlap_words=2))
    assert {title for title, _ in chunks} == {"Install guide"}
    words = [text.split() for _, text in chunks]
    assert all(len(w) <= 8 for w in words)
    assert words[0][:2] == ["How", "to"] and words[-1][-1] == "it."
    for before, after in zip(words, words[1:]):
        assert before[-2:] == after[:2]


def test_short_document_and_zero_limit_stay_whole():
    document = parse_document(MARKDOWN, "markdown")
    whole = "How to install the tool.\n\n## With pip\nRun pip install tool.\n\n## From source\nClone the repository and build it."
    assert chunk_document(document, settings(max_chunk_words=0)) == [("Install guide", whole)]
    assert chunk_document(document, settings(max_chunk_words=500, chunk_overlap_words=10)) == [("Install guide", whole)]
    assert chunk_document(ParsedDocument("", [Section(0, "", "  ")]), settings()) == []


def make_folder(root: Path) -> Path:
    folder = root / "docs"
    write(folder / "guide" / "install.md", MARKDOWN)
    write(folder / "config.html", HTML)
    write(folder / "reference.rst", RST)
    write(folder / "notes.txt", "First sentence of the notes. Then more notes follow here.")
    write(folder / "empty.md", "\n\n")
    write(folder / "logo.png", b"\x89PNG")
    write(folder / ".git" / "config.txt", "hidden")
    write(folder / ".draft.md", "# hidden")
    return folder


NO_MARKUP = {"passages": 4, "with_markup": 0, "tags": 0, "link_targets": 0, "images": 0, "fences": 0, "html_comments": 0,
             "mdx_statements": 0, "entities": 0}


def test_folder_ids_come_from_paths_and_are_stable(tmp_path):
    folder = make_folder(tmp_path)
    corpus, report = read_document_folder(folder, settings())
    assert list(corpus) == ["config.html", "guide/install.md", "notes.txt", "reference.rst"]
    assert corpus["guide/install.md"].title == "Install guide"
    assert corpus["notes.txt"].title == "" and corpus["notes.txt"].text.startswith("First sentence")
    assert report.as_metrics(len(corpus)) == {
        "documents": 4, "files": {"html": 1, "markdown": 2, "rst": 1, "text": 1}, "empty_files": 1, "chunked_files": 0, "skipped_files": 1,
        "skipped_documents": {"empty.md": "no text"},
        "markup": {"before_cleaning": {**NO_MARKUP, "with_markup": 1, "fences": 1}, "after_cleaning": NO_MARKUP},
    }
    assert report.skipped == {".png": 1}
    assert "```" not in corpus["config.html"].text and '    theme = "dark"' in corpus["config.html"].text  # <pre> kept as code
    again, _ = read_document_folder(folder, settings())
    assert again == corpus
    # Headings of every format reach the section pairs.
    anchors = {p.anchor for p in section_pairs(corpus)}
    assert {"Install guide: With pip", "Configuration: Colours", "Reference: Functions"} <= anchors


def test_chunked_files_get_numbered_ids(tmp_path):
    folder = make_folder(tmp_path)
    corpus, report = read_document_folder(folder, settings(max_chunk_words=8, chunk_overlap_words=2))
    install = [doc_id for doc_id in corpus if doc_id.startswith("guide/install.md")]
    assert install == [f"guide/install.md#{n}" for n in range(1, len(install) + 1)] and len(install) > 1
    assert "notes.txt#1" in corpus and report.chunked_files >= 2
    assert chunks_by_document(list(corpus))["guide/install.md"] == install
    assert "notes.txt" not in corpus


def test_invalid_utf8_names_file_and_line(tmp_path):
    folder = tmp_path / "docs"
    write(folder / "bad.md", b"# Title\nfine\n\xff\xfe broken\n")
    with pytest.raises(DataFileError, match=r"bad.md:3: not valid UTF-8"):
        read_document_folder(folder, settings())


def test_folder_without_documents(tmp_path):
    write(tmp_path / "docs" / "image.png", b"x")
    with pytest.raises(DataFileError, match=r"docs: no documents found \(looked for .htm, .html, .markdown, .md, .mdx, .rst, .txt files\)"):
        read_document_folder(tmp_path / "docs", settings())
    write(tmp_path / "blank" / "a.txt", "   \n")
    with pytest.raises(DataFileError, match="every document in the folder is empty"):
        read_document_folder(tmp_path / "blank", settings())


def test_overlap_must_be_smaller_than_chunk():
    with pytest.raises(ValidationError, match=r"chunk_overlap_words \(50\) must be smaller than max_chunk_words \(50\)"):
        IngestParams(max_chunk_words=50, chunk_overlap_words=50)
    assert IngestParams(max_chunk_words=0, chunk_overlap_words=50).max_chunk_words == 0


def test_ingest_stage_on_a_folder(tmp_path, monkeypatch):
    from stages import ingest

    make_folder(tmp_path / "data" / "mine")
    (tmp_path / "params.yaml").write_text("data:\n  dir: data/mine\n  corpus: docs\n"
                                          "ingest:\n  max_chunk_words: 8\n  chunk_overlap_words: 2\n")
    monkeypatch.chdir(tmp_path)
    ingest.main()
    rows = [json.loads(line) for line in (tmp_path / "data" / "corpus" / "corpus.jsonl").read_text().splitlines()]
    assert rows[0]["_id"] == "config.html#1" and set(rows[0]) == {"_id", "title", "text"}
    metrics = json.loads((tmp_path / "reports" / "ingest.json").read_text())
    assert metrics["documents"] == len(rows) and metrics["skipped_files"] == 1 and metrics["chunked_files"] >= 2


def test_ingest_stage_passes_a_corpus_file_through(tmp_path, monkeypatch):
    from conftest import write_tiny_dataset

    from stages import ingest

    write_tiny_dataset(tmp_path / "data" / "sample")
    (tmp_path / "params.yaml").write_text("ingest:\n  max_chunk_words: 3\n  chunk_overlap_words: 1\n")  # never cuts a corpus.jsonl
    monkeypatch.chdir(tmp_path)
    ingest.main()
    source = [json.loads(line) for line in (tmp_path / "data" / "sample" / "corpus.jsonl").read_text().splitlines()]
    written = [json.loads(line) for line in (tmp_path / "data" / "corpus" / "corpus.jsonl").read_text().splitlines()]
    assert written == source
    assert json.loads((tmp_path / "reports" / "ingest.json").read_text()) == {
        "documents": 12, "markup": {**NO_MARKUP, "passages": 12}}  # counted, never changed
