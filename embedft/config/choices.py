"""The named choices that more than one part of the pipeline knows: pair sources, evaluated systems and BM25's languages.

Each is defined here once, in its order, with what each choice means; the params, the filters, the metrics and
the reports read them from here.
"""

from __future__ import annotations

PAIR_SOURCES: dict[str, str] = {
    "labelled": "a train-split query and a document judged relevant to it (qrels): written and judged by people",
    "search_log": "a logged query and the document users clicked for it (data.search_logs)",
    "title": "a document's title and its text",
    "section": "a heading (after the document title) and the text of its section",
    "first_sentence": "the first sentence of an untitled document and the rest of it",
    "llm": "a query an LLM wrote for a passage (synthesize.llm)",
    "generated": "a query a local seq2seq model sampled for a passage (synthesize.local_generator)",
    "general": "a general-domain pair mixed in against forgetting (data.general_pairs); its positive is no corpus document",
}
"""Every source a training pair can come from, most trusted first: when two sources give the same (query,
passage), the duplicate filter keeps the pair of the earlier one. Every pair carries one of these tags."""

SOURCE_NAMES: tuple[str, ...] = tuple(PAIR_SOURCES)
CORPUS_SOURCE_NAMES: tuple[str, ...] = tuple(name for name in SOURCE_NAMES if name != "general")
"""The sources whose positive is a corpus document (every source but the general-domain mix)."""
STRUCTURE_SOURCE_NAMES: tuple[str, ...] = ("title", "section", "first_sentence")
"""The sources cut from the corpus's own structure; synthesize.max_structure_pairs_per_source caps each."""

SYSTEMS: dict[str, str] = {
    "base": "the base model, zero-shot",
    "finetuned": "the fine-tuned model",
    "bm25": "BM25 (bm25s), the lexical baseline",
    "hybrid": "the fine-tuned model and BM25, fused by reciprocal rank",
    "concatenated": "base and fine-tuned embeddings side by side (evaluate.concatenated)",
}
"""The systems `evaluate` scores, in the order tables show them."""
SYSTEM_LABELS: dict[str, str] = {"base": "base", "finetuned": "fine-tuned", "bm25": "BM25", "hybrid": "hybrid",
                                 "concatenated": "concatenated"}
"""How a chart names each system: the column headers of the plot files, which the legends show as they are."""

BM25_LANGUAGES: dict[str, str | None] = {
    "en": "english", "da": "danish", "de": "german", "es": "spanish", "fr": "french", "it": "italian", "ko": None,
    "nl": "dutch", "no": "norwegian", "pt": "portuguese", "ru": "russian", "sv": "swedish", "tr": "turkish", "zh": None,
}
"""The languages whose stop words bm25s ships (ISO 639-1 codes, as bm25s names them), each with its PyStemmer
(Snowball) stemmer; None: Snowball has none for it (Korean, Chinese). ``none`` (no stop words) is the other choice
of ``bm25.language``."""
