"""Pairs mined from document structure: headed sections (Markdown and reST), titles, first sentences."""

from __future__ import annotations

from embedft.core.rows import Document, Pair
from embedft.corpus.sections import Section, parse_sections, split_sections
from embedft.pairs.structure import first_sentence_pairs, section_pairs, title_pairs


def test_markdown_headings():
    text = "Preamble is dropped.\n# Install\nRun pip.\n\nThen import.\n## Usage ##\nCall it.\n   ### Deep   \nDeep body."
    assert split_sections(text) == [
        ("Install", "Run pip.\n\nThen import."),
        ("Usage", "Call it."),
        ("Deep", "Deep body."),
    ]


def test_markdown_needs_space_after_hashes_and_at_most_six():
    text = "# Real\n#hashtag is text\n####### seven is text\n    # indented four is code"
    assert split_sections(text) == [("Real", "#hashtag is text\n####### seven is text\n    # indented four is code")]


def test_rest_underlined_headings():
    text = "Intro line.\n\nInstallation\n============\nUse pip.\n\nUsage\n-----\nImport it.\n\nNotes\n~~~~~~~~~\nNone."
    assert split_sections(text) == [
        ("Installation", "Use pip."),
        ("Usage", "Import it."),
        ("Notes", "None."),
    ]


def test_rest_underline_shorter_than_title_is_not_a_heading():
    text = "# Top\nA long heading line\n===\nbody"
    assert split_sections(text) == [("Top", "A long heading line\n===\nbody")]


def test_mixed_markdown_and_rest():
    text = "# One\nfirst\nTwo\n^^^\nsecond"
    assert split_sections(text) == [("One", "first"), ("Two", "second")]


def test_no_headings_gives_nothing():
    assert split_sections("Just a paragraph.\nAnother line.") == []
    assert split_sections("") == []


def test_heading_with_empty_body():
    assert split_sections("# A\n# B\ntext") == [("A", ""), ("B", "text")]


def test_markdown_comment_in_fenced_code_is_not_a_heading():
    text = "# Usage\nExample:\n```python\n# make a client\nclient = Client()\n```\n## Options\nSome options."
    assert split_sections(text) == [
        ("Usage", "Example:\n```python\n# make a client\nclient = Client()\n```"),
        ("Options", "Some options."),
    ]


def test_rest_overline_not_left_in_previous_body():
    text = "=====\nFirst\n=====\nBody one.\n\n======\nSecond\n======\nBody two."
    assert split_sections(text) == [("First", "Body one."), ("Second", "Body two.")]


def make_corpus() -> dict[str, Document]:
    return {
        "a": Document("a", "Alpha guide", "# Setup\nInstall alpha.\n# Run\nRun alpha now."),
        "b": Document("b", "", "The first sentence here. The rest follows! And more."),
        "c": Document("c", "", "single sentence without an end"),
        "d": Document("d", "", "Heading\n=======\nSection body text."),
    }


def test_title_pairs():
    pairs = title_pairs(make_corpus())
    assert pairs == [Pair("Alpha guide", "# Setup\nInstall alpha.\n# Run\nRun alpha now.", "a", "title")]


def test_section_pairs_prefix_title_when_present():
    pairs = section_pairs(make_corpus())
    assert pairs == [
        Pair("Alpha guide: Setup", "Install alpha.", "a", "section"),
        Pair("Alpha guide: Run", "Run alpha now.", "a", "section"),
        Pair("Heading", "Section body text.", "d", "section"),
    ]


def test_first_sentence_pairs_only_untitled_with_two_parts():
    pairs = first_sentence_pairs(make_corpus())
    assert Pair("The first sentence here.", "The rest follows! And more.", "b", "first_sentence") in pairs
    assert all(p.positive_id != "a" for p in pairs)  # titled
    assert all(p.positive_id != "c" for p in pairs)  # one sentence only
    assert {p.positive_id for p in pairs} == {"b"}  # "d" has no sentence break before its end


def test_first_sentence_does_not_split_lowercase_continuation():
    corpus = {"x": Document("x", "", "Use e.g. this tool. It works.")}
    assert first_sentence_pairs(corpus) == [Pair("Use e.g. this tool.", "It works.", "x", "first_sentence")]


def test_pair_as_row():
    assert Pair("a", "p", "d1", "title").as_row() == {"anchor": "a", "positive": "p", "positive_id": "d1", "source": "title"}


def test_html_headings_in_corpus_text():
    text = "<p>Intro.</p><h2>Install</h2><p>Use <b>pip</b>.</p><h3>Extras</h3><ul><li>a</li></ul>"
    assert split_sections(text) == [("Install", "Use pip."), ("Extras", "- a")]
    corpus = {"h": Document("h", "Tool", text)}
    assert section_pairs(corpus) == [Pair("Tool: Install", "Use pip.", "h", "section"), Pair("Tool: Extras", "- a", "h", "section")]


def test_parse_sections_levels_and_preamble():
    text = "Before.\n# One\nbody one\n### Three\nbody three\nTwo\n===\nrst one\nSub\n---\nrst two\nAgain\n=====\nrst one again"
    assert parse_sections(text) == [
        Section(0, "", "Before."),
        Section(1, "One", "body one"),
        Section(3, "Three", "body three"),
        Section(1, "Two", "rst one"),      # first adornment style seen: level 1
        Section(2, "Sub", "rst two"),      # second style: level 2
        Section(1, "Again", "rst one again"),
    ]
    assert parse_sections("") == [Section(0, "", "")]


def test_rest_overlined_and_underlined_is_its_own_level():
    text = "=====\nTitle\n=====\nintro\nPart\n=====\nbody"
    assert parse_sections(text) == [Section(0, "", ""), Section(1, "Title", "intro"), Section(2, "Part", "body")]
