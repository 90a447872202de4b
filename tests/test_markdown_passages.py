"""Clean passages from a folder of MDX-style documentation: markup goes (its text stays), code keeps its lines or
goes as `ingest.code_blocks` says, passages are sized with the base model's tokenizer so each fits
`base.max_seq_length` with its title, and reports/ingest.json counts the markup left before and after cleaning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sentence_transformers import SentenceTransformer

from embedft.config import IngestParams
from embedft.corpus import PassageLimit, clean_markdown, markup_counts, parse_sections, read_document_folder
from embedft.encoding import count_over_window, text_token_counter

PAGES = {
    "docs/getting-started/install.mdx": '''---
title: Installing the client
sidebar_position: 2
---
import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';
export const minimum = "3.10";

# Install

The <abbr title="Software Development Kit">SDK</abbr> needs Python {minimum} or later. See the
[release notes](https://example.com/releases "Releases") and the [support policy][policy].

<admon type="tip">
Use a virtual environment, so the <code>client</code> never touches the system's packages.
</admon>

<Tabs groupId="os">
  <TabItem value="linux" label="Linux" default>

```bash
# create the environment first
python -m venv .venv && . .venv/bin/activate
pip install example-client
```

  </TabItem>
  <TabItem value="windows" label="Windows">

~~~powershell
py -m venv .venv
.venv\\Scripts\\Activate.ps1
~~~

  </TabItem>
</Tabs>

![The installer's first screen](./img/installer.png)

## Check the installation {#check}

Run `example --version`; it prints the version &amp; the build date. Questions go to <https://example.com/help>.

<!-- TODO: add the conda instructions -->

[policy]: https://example.com/policy "Support policy"
''',
    "docs/reference/options.md": '''# Options

Every option can be set in `client.toml` or as an environment variable.

| Option | Default | What it does |
|--------|:-------:|--------------|
| `timeout` | 30 | Seconds before a request is given up |
| `retries` | 3 | Attempts after a failed request |

:::note[Environment wins]
A variable such as <kbd>EXAMPLE_TIMEOUT</kbd> overrides the file.
:::

## Timeouts

''' + " ".join(f"Timeouts protect the client from a server that never answers, case {n}." for n in range(40)) + '''

## Retries

Retries back off exponentially.<br/>The first wait is one second.
''',
}


def write_pages(folder: Path) -> Path:
    for name, text in PAGES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path) -> SentenceTransformer:
    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    model.max_seq_length = 64
    return model


def test_markup_goes_and_its_text_stays() -> None:
    cleaned = clean_markdown(PAGES["docs/getting-started/install.mdx"].split("---\n", 2)[2])
    assert "The SDK needs Python {minimum} or later. See the\nrelease notes and the support policy." in cleaned
    assert "Use a virtual environment, so the client never touches the system's packages." in cleaned
    assert "The installer's first screen" in cleaned and "installer.png" not in cleaned
    assert "## Check the installation\n" in cleaned and "{#check}" not in cleaned
    assert "it prints the version & the build date. Questions go to https://example.com/help." in cleaned
    assert "`example --version`" in cleaned  # inline code stays as written
    for gone in ("import ", "export ", "<", "](", "```", "~~~", "TODO", "[policy]", "&amp;"):
        assert gone not in cleaned, gone
    # Code keeps its lines as indented code, so its '# comment' is no heading of the page.
    assert "    # create the environment first\n    python -m venv .venv" in cleaned
    assert [s.heading for s in parse_sections(cleaned)] == ["", "Install", "Check the installation"]
    dropped = clean_markdown(PAGES["docs/getting-started/install.mdx"], code_blocks="drop")
    assert "venv" not in dropped and "Activate.ps1" not in dropped and "The SDK needs Python" in dropped


def test_tables_admonitions_and_line_breaks() -> None:
    cleaned = clean_markdown(PAGES["docs/reference/options.md"])
    assert "| What it does |\n| `timeout` | 30 | Seconds before a request is given up |" in cleaned and "|--------|" not in cleaned
    assert ":::" not in cleaned and "Environment wins\nA variable such as EXAMPLE_TIMEOUT overrides the file." in cleaned
    assert "Retries back off exponentially.\nThe first wait is one second." in cleaned
    assert clean_markdown("Title\n-----\n\ntext") == "Title\n-----\n\ntext"  # a heading's underline is no table rule
    assert clean_markdown(":::\n\nSome text\n[ref]: https://x\nnext") == "Some text\nnext"  # markup lines end at the line
    assert clean_markdown("[![badge](https://x/b.svg)](https://x) and <Note />") == "badge and"


def test_markup_counts_find_each_kind() -> None:
    counts = markup_counts(["plain", "<b>x</b> [a](b)", "```\ncode\n```", "![i](j) &amp; <!-- c -->", "import X from 'y'"])
    assert counts == {"passages": 5, "with_markup": 4, "tags": 1, "link_targets": 2, "images": 1, "fences": 1,
                      "html_comments": 1, "mdx_statements": 1, "entities": 1}


def test_passages_fit_the_window_with_their_title(tmp_path: Path, tiny_model: SentenceTransformer) -> None:
    folder = write_pages(tmp_path / "site")
    counter = text_token_counter(tiny_model, "passage: ")
    limit = PassageLimit(max_words=200, max_tokens=64, count_tokens=counter)
    corpus, report = read_document_folder(folder, IngestParams(), limit=limit)
    assert all(counter(document.full_text) <= 64 for document in corpus.values())
    assert count_over_window(tiny_model, [d.full_text for d in corpus.values()], "passage: ") == 0
    words_only, _ = read_document_folder(folder, IngestParams())
    assert count_over_window(tiny_model, [d.full_text for d in words_only.values()], "passage: ") > 0  # 200 words overflow 64 tokens
    timeouts = [d for d in corpus.values() if d.title == "Options: Timeouts"]
    assert len(timeouts) > 2 and all(d.text.startswith("## Timeouts\n") for d in timeouts)
    assert corpus["docs/getting-started/install.mdx#1"].title == "Install"
    markup = report.as_metrics(len(corpus))["markup"]
    assert markup["before_cleaning"]["with_markup"] >= 3 and markup["before_cleaning"]["tags"] >= 2
    assert markup["after_cleaning"] == {**markup["after_cleaning"], "with_markup": 0, "passages": len(corpus)}
    text = " ".join(d.full_text for d in corpus.values())
    assert "SDK" in text and "release notes" in text and "python -m venv .venv" in text and "abbr" not in text


def test_ingest_stage_sizes_a_folder_with_the_base_model(tmp_path: Path, tiny_model_path: Path, monkeypatch, capsys) -> None:
    from stages import ingest

    write_pages(tmp_path / "data" / "sample")
    params = {"base": {"model": str(tiny_model_path), "max_seq_length": 48},
              "data": {"corpus": "docs"}, "ingest": {"code_blocks": "drop"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ingest.main()
    rows = [json.loads(line) for line in (tmp_path / "data" / "corpus" / "corpus.jsonl").read_text().splitlines()]
    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    model.max_seq_length = 48
    assert count_over_window(model, [f"{r['title']}\n{r['text']}" if r["title"] else r["text"] for r in rows]) == 0
    assert not any("venv" in row["text"] for row in rows)  # ingest.code_blocks: drop
    report = json.loads((tmp_path / "reports" / "ingest.json").read_text())
    assert report["markup"]["after_cleaning"]["with_markup"] == 0 < report["markup"]["before_cleaning"]["with_markup"]
    assert report["files"] == {"markdown": 2}
    assert "0 hold markup" in capsys.readouterr().out


def test_token_cap_params() -> None:
    assert IngestParams().max_chunk_tokens == "auto" and IngestParams().token_cap(256) == 256
    assert IngestParams(max_chunk_tokens=100).token_cap(256) == 100 and IngestParams(max_chunk_tokens=0).token_cap(256) == 0
    with pytest.raises(ValueError):
        IngestParams(max_chunk_tokens="many")
    with pytest.raises(ValueError):
        IngestParams(code_blocks="strip")
