"""The named choices that more than one part of the pipeline knows: pair sources, evaluated systems, score
normalisations and BM25's languages.

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
    "hybrid": "the fine-tuned model and BM25, their normalised scores mixed with the weight chosen on dev (models/hybrid.json)",
    "hybrid_rrf": "the fine-tuned model and BM25, fused by reciprocal rank (no weight to choose)",
    "concatenated": "base and fine-tuned embeddings side by side (evaluate.concatenated)",
    "reranked": "a cross-encoder reranking the top evaluate.rerank_top_k of the system best on dev (evaluate.rerank_cross_encoder)",
}
"""The systems `evaluate` scores, in the order tables show them. Each model of evaluate.candidate_models is one more,
named ``CANDIDATE_PREFIX`` + the name as given."""
SYSTEM_LABELS: dict[str, str] = {"base": "base", "finetuned": "fine-tuned", "bm25": "BM25", "hybrid": "hybrid",
                                 "hybrid_rrf": "hybrid RRF", "concatenated": "concatenated", "reranked": "reranked"}
"""How a chart names each system: the column headers of the plot files, which the legends show as they are."""

BM25_LANGUAGES: dict[str, str | None] = {
    "en": "english", "da": "danish", "de": "german", "es": "spanish", "fr": "french", "it": "italian", "ko": None,
    "nl": "dutch", "no": "norwegian", "pt": "portuguese", "ru": "russian", "sv": "swedish", "tr": "turkish", "zh": None,
}
"""The languages whose stop words bm25s ships (ISO 639-1 codes, as bm25s names them), each with its PyStemmer
(Snowball) stemmer; None: Snowball has none for it (Korean, Chinese). ``none`` (no stop words) is the other choice
of ``bm25.language``."""

CANDIDATE_PREFIX = "zero_shot:"
"""A candidate model's system name is this prefix and the model's name or path (evaluate.candidate_models)."""
FINE_TUNED_SYSTEMS: tuple[str, ...] = ("finetuned", "hybrid", "hybrid_rrf", "concatenated")
"""The systems that use the fine-tuned model (an earlier round's model, or a reranking of one of these, counts too);
the rest (base, BM25, candidates) are the alternatives a user could ship without fine-tuning."""

SCORE_NORMALISATIONS: dict[str, str] = {
    "min_max": "each query's scores mapped to 0..1 by (score - min) / (max - min) over that system's retrieved list",
    "z_score": "each query's scores shifted and scaled to mean 0 and standard deviation 1 over that system's retrieved list",
}
"""How the weighted hybrid puts dense and BM25 scores on one scale before mixing them, per query."""
