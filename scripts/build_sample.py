"""Build the embedded default dataset from the Python standard library's docstrings.

Every Python install carries the standard library, so this corpus can be rebuilt anywhere without a
download. Each public module, class, function and method with a substantial docstring becomes one
document: its title is the qualified name and its text is the docstring without the one-line summary.
The summary becomes a query whose relevant document is that entry, which makes a realistic
"describe what you want, find the API" retrieval task.

Usage:
    python scripts/build_sample.py [--out data/sample] [--min-chars 300]

Writes corpus.jsonl, queries.jsonl and qrels.tsv in BEIR layout, plus README.md stating the Python
version it was built with. Output is sorted so that a rebuild on the same Python is byte-identical.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import pkgutil
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

# Modules with import-time side effects (opening a browser, printing, GUIs) or that are test suites.
SKIPPED_MODULES = {
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3",
    "pydoc_data", "ensurepip", "venv", "__main__", "__phello__", "msilib", "winreg", "winsound",
    "_winapi", "nt", "msvcrt", "xxsubtype", "xxlimited", "xxlimited_35", "sre_compile", "sre_parse",
    "sre_constants", "distutils",
}


@dataclass(frozen=True)
class DocEntry:
    """One documented API object: its qualified name, summary line, and the rest of its docstring."""

    name: str
    summary: str
    body: str


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace to single spaces and strip the ends."""
    return re.sub(r"\s+", " ", text).strip()


def split_docstring(doc: str) -> tuple[str, str] | None:
    """Split a cleaned docstring into (summary, body), or None when it has no separate summary.

    The summary is the first paragraph, or the first sentence when the docstring is one paragraph;
    the body is everything after it.
    """
    doc = inspect.cleandoc(doc)
    parts = re.split(r"\n\s*\n", doc, maxsplit=1)
    if len(parts) != 2:
        first_sentence = re.match(r"(.+?\.)\s+(?=[A-Z])(.+)", doc, flags=re.DOTALL)
        if not first_sentence:
            return None
        parts = [first_sentence.group(1), first_sentence.group(2)]
    summary, body = normalise_space(parts[0]), parts[1].strip()
    # Signature lines ("foo(a, b) -> int") that C modules put first are not natural-language queries.
    if not summary or "(" in summary.split(" ")[0] or "->" in summary:
        return None
    if not summary[0].isalpha() or ">>>" in summary or not (10 <= len(summary) <= 200):
        return None
    return summary, body


def public_modules() -> list[str]:
    """Names of the standard library's public top-level modules and their public submodules."""
    names: set[str] = set()
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in SKIPPED_MODULES:
            continue
        names.add(top)
        with contextlib.suppress(Exception), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(top)
            if hasattr(module, "__path__"):
                for info in pkgutil.walk_packages(module.__path__, prefix=f"{top}."):
                    leaf_parts = info.name.split(".")
                    if any(p.startswith("_") or p in SKIPPED_MODULES or p == "tests" for p in leaf_parts):
                        continue
                    names.add(info.name)
    return sorted(names)


def is_defined_here(obj: object, module_name: str) -> bool:
    """True when ``obj`` belongs to ``module_name``: defined there, or in the private C module behind it.

    Objects imported from another public module are documented there, so counting them here would
    duplicate them.
    """
    home = getattr(obj, "__module__", None)
    if home == module_name:
        return True
    return isinstance(home, str) and (home.startswith("_") or home == "posix")


def iter_entries(module_name: str) -> list[DocEntry]:
    """Documented public objects defined in one module (objects re-exported from elsewhere are skipped)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - platform-specific modules fail to import; skip them
            return []
    found: list[tuple[str, object]] = [(module_name, module)]
    for attr, obj in sorted(vars(module).items()):
        if attr.startswith("_") or not is_defined_here(obj, module_name):
            continue
        if inspect.isclass(obj) or inspect.isroutine(obj):
            found.append((f"{module_name}.{attr}", obj))
            if inspect.isclass(obj):
                for meth_name, meth in sorted(vars(obj).items()):
                    if meth_name.startswith("_"):
                        continue
                    meth = getattr(meth, "__func__", meth)
                    if inspect.isroutine(meth) or isinstance(meth, property):
                        found.append((f"{module_name}.{attr}.{meth_name}", meth))
    entries = []
    for name, obj in found:
        doc = getattr(obj, "__doc__", None)
        if not isinstance(doc, str):
            continue
        split = split_docstring(doc)
        if split:
            entries.append(DocEntry(name=name, summary=split[0], body=split[1]))
    return entries


def build_dataset(entries: list[DocEntry], min_chars: int) -> tuple[list[dict], list[dict], list[tuple[str, str]]]:
    """Turn doc entries into (corpus, queries, qrels), deduplicated and leak-free.

    Args:
        entries: documented objects, in any order.
        min_chars: a body shorter than this is not a substantial document and is skipped.

    Returns:
        corpus rows ``{_id, title, text}``, query rows ``{_id, text}`` and qrels ``(query_id, doc_id)``.
        A summary shared by several documents becomes one query relevant to all of them.
    """
    corpus: dict[str, dict] = {}
    seen_bodies: set[str] = set()
    summary_docs: dict[str, set[str]] = {}
    for entry in sorted(entries, key=lambda e: e.name):
        body_key = normalise_space(entry.body)
        if len(body_key) < min_chars or body_key in seen_bodies:
            continue
        # The query must not be answerable by copying: its summary may not appear in the document.
        if normalise_space(entry.summary).lower() in body_key.lower():
            continue
        seen_bodies.add(body_key)
        corpus[entry.name] = {"_id": entry.name, "title": entry.name, "text": entry.body}
        summary_docs.setdefault(entry.summary, set()).add(entry.name)
    queries, qrels = [], []
    for number, summary in enumerate(sorted(summary_docs), start=1):
        query_id = f"q{number:05d}"
        queries.append({"_id": query_id, "text": summary})
        qrels.extend((query_id, doc_id) for doc_id in sorted(summary_docs[summary]))
    return [corpus[k] for k in sorted(corpus)], queries, qrels


def write_dataset(out: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple[str, str]]) -> None:
    """Write the BEIR files and a README that records how and with which Python they were built."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in corpus)
    with open(out / "queries.jsonl", "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in queries)
    with open(out / "qrels.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t1\n" for q, d in qrels)
    version = sys.version.split()[0]
    (out / "README.md").write_text(
        "# Sample dataset: Python standard library docstrings\n\n"
        f"Built by `python scripts/build_sample.py` with Python {version}.\n\n"
        f"- corpus.jsonl: {len(corpus)} documents (title = qualified name, text = docstring minus its summary)\n"
        f"- queries.jsonl: {len(queries)} queries (the one-line summaries)\n"
        f"- qrels.tsv: {len(qrels)} relevance judgements (score 1)\n\n"
        "A summary never appears verbatim in its document. A summary shared by several entries is one query\n"
        "relevant to each of them. Licence: the Python Software Foundation License, as the docstrings are.\n",
        encoding="utf-8",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample"), help="output folder")
    parser.add_argument("--min-chars", type=int, default=100, help="shortest docstring body kept")
    args = parser.parse_args()
    entries = [e for name in public_modules() for e in iter_entries(name)]
    corpus, queries, qrels = build_dataset(entries, args.min_chars)
    write_dataset(args.out, corpus, queries, qrels)
    print(f"{len(corpus)} documents, {len(queries)} queries, {len(qrels)} qrels -> {args.out}")


if __name__ == "__main__":
    main()
