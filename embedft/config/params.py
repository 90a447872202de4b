"""Typed, validated access to ``params.yaml``: the settings that decide a run's results.

Every stage validates the whole file before doing any work, so a typo in any section is caught at once,
but it only *uses* (and only lists as a DVC dependency) the sections it needs. The defaults here are the
values ``params.yaml`` ships with (a test keeps the two equal). How the machine runs the pipeline (device,
batch sizes for inference, resuming) is not here: see :mod:`embedft.config.machine`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from embedft.config.choices import BM25_LANGUAGES, CORPUS_SOURCE_NAMES, SOURCE_NAMES
from embedft.config.losses import DIRECTIONS, HARDNESS_MODES, LOSS_NAMES, LOSSES, PARTITION_MODES, loss_param_keys
from embedft.config.validation import Section, read_yaml_mapping, validate
from embedft.core import PipelineError

DEFAULT_PARAMS_PATH = Path("params.yaml")


class BaseParams(Section):
    """Settings shared by every stage that touches a model."""

    seed: int = Field(42, ge=0, le=2**32 - 1,
                      description="Seed for every random choice: splits, sampling, training (0 to 2**32 - 1, numpy's range).")
    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Base model: a sentence-transformers name or a local path.",
    )
    query_prompt: str = Field("", description="Text put before every query (e.g. bge's instruction).")
    document_prompt: str = Field("", description="Text put before every document.")
    max_seq_length: int = Field(256, ge=8, description="Tokens kept per text when encoding.")
    embedding_dtype: Literal["float32", "float16"] = Field(
        "float32", description="Precision of the stored corpus embeddings (data/embeddings/*): float16 halves their disk "
        "and memory-map size and changes scores slightly."
    )
    trust_remote_code: bool = Field(
        False, description="Run Python code shipped with a model (some Hub models need it). Off: that code runs with your rights."
    )


class DataParams(Section):
    """Where the dataset lives, in BEIR layout."""

    dir: str = Field("data/sample", description="Dataset folder; a DVC dependency of the stages that read it.")
    corpus: str = Field(
        "corpus.jsonl",
        description="Inside `dir`: a corpus file (one {_id, title, text} per line, used as given), or a folder of "
        ".md/.markdown/.mdx/.html/.htm/.rst/.txt documents that `ingest` turns into chunks with path-derived ids.",
    )
    queries: str = Field("queries.jsonl", description="Queries file inside `dir`; may be absent (no labels).")
    qrels: str = Field(
        "qrels.tsv",
        description="Judgements inside `dir`: a TSV split by `split`, or a folder of train/dev/test.tsv used as given.",
    )
    search_logs: str = Field(
        "search_logs",
        description="Inside `dir`: a search-log file (.csv, .tsv, .jsonl) or a folder of them; optional.",
    )
    general_pairs: str = Field(
        "general_pairs.jsonl",
        description="Inside `dir`: general-domain {anchor, positive} pairs, mixed in when synthesize.general_mix.fraction > 0.",
    )

    @property
    def corpus_path(self) -> Path:
        """The user's corpus file or folder; only `ingest` reads it, later stages read the canonical copy."""
        return Path(self.dir) / self.corpus

    @property
    def queries_path(self) -> Path:
        return Path(self.dir) / self.queries

    @property
    def qrels_path(self) -> Path:
        return Path(self.dir) / self.qrels

    @property
    def search_logs_path(self) -> Path:
        return Path(self.dir) / self.search_logs

    @property
    def general_pairs_path(self) -> Path:
        return Path(self.dir) / self.general_pairs


class IngestParams(Section):
    """How a folder of documents is cut into passages (a corpus.jsonl passes through unchanged)."""

    chunk_by: Literal["heading", "length"] = Field(
        "heading",
        description="'heading': cut at Markdown/HTML/reST headings, packing small sections together up to "
        "max_chunk_words and max_chunk_tokens and cutting longer ones by length; 'length': the longest windows that "
        "keep both caps.",
    )
    max_chunk_words: int = Field(200, ge=0, description="Most words per passage (its title not counted); 0: no word cap.")
    max_chunk_tokens: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        "auto", description="Most tokens per passage as the base model reads it (base.document_prompt, its title and "
        "text, special tokens included), counted with base.model's tokenizer, so that no passage is truncated; 'auto': "
        "base.max_seq_length; 0: no token cap (then max_chunk_words: 0 keeps each file whole)."
    )
    chunk_overlap_words: int = Field(
        40, ge=0, description="Words repeated at the start of a passage from the end of the one before it, when a "
        "text is cut by length, so a sentence cut in two is whole in one of them (at most half a passage cut short "
        "by max_chunk_tokens)."
    )
    code_blocks: Literal["keep", "drop"] = Field(
        "keep", description="Fenced code in Markdown/MDX: 'keep' its lines (without the ``` or ~~~ fences), or 'drop' it."
    )

    def token_cap(self, max_seq_length: int) -> int:
        """The token cap in tokens: ``max_chunk_tokens``, with 'auto' read as ``max_seq_length`` (``base``'s)."""
        return max_seq_length if self.max_chunk_tokens == "auto" else self.max_chunk_tokens

    @model_validator(mode="after")
    def overlap_is_smaller_than_chunk(self) -> IngestParams:
        if self.max_chunk_words and self.chunk_overlap_words >= self.max_chunk_words:
            raise ValueError(
                f"chunk_overlap_words ({self.chunk_overlap_words}) must be smaller than max_chunk_words ({self.max_chunk_words})"
            )
        return self


class SplitParams(Section):
    """How labelled queries are divided into train, dev and test."""

    train_fraction: float = Field(0.6, ge=0.0, le=1.0)
    dev_fraction: float = Field(0.1, ge=0.0, le=1.0)
    test_fraction: float = Field(0.3, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def fractions_sum_to_one(self) -> SplitParams:
        total = self.train_fraction + self.dev_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train_fraction + dev_fraction + test_fraction must be 1, got {total:g}")
        return self


PairSource = Literal[SOURCE_NAMES]  # type: ignore[valid-type]
"""The tag every training pair carries: where it came from (see embedft.config.choices.PAIR_SOURCES)."""
CorpusPairSource = Literal[CORPUS_SOURCE_NAMES]  # type: ignore[valid-type]
"""Sources whose positive is a corpus document (every source but the general-domain mix-in)."""
QueryStyle = Literal["question", "keyword", "claim"]

DEFAULT_LLM_SYSTEM_PROMPT = "You write realistic search queries for training a retrieval model. You reply with JSON only."
DEFAULT_LLM_PROMPT_TEMPLATE = """Read the passage and write search queries that it answers.
{request}
Write each query the way a user would type it, without copying long phrases from the passage.
Reply with a JSON object only, in this form: {example}

Passage:
\"\"\"
{passage}
\"\"\"
"""
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SearchLogParams(Section):
    """Pairs from search logs: (query, clicked document) from CSV or JSON-lines files."""

    enabled: bool = Field(True, description="Use the logs at data.search_logs (skipped while there are none).")
    min_clicks: int = Field(1, ge=1, description="A (query, document) needs at least this many clicks, summed over the log.")
    min_dwell_seconds: float = Field(
        0.0, ge=0.0, description="Rows with a shorter dwell time are bounces and dropped; when above 0, rows without a "
        "dwell time are dropped too."
    )
    ignore_columns: list[str] = Field(
        default_factory=list, description="Other columns your export has (timestamp, session, ...); any other column is unknown."
    )
    on_bad_row: Literal["error", "skip"] = Field(
        "error", description="A row with unknown columns, a bad id or bad numbers: 'error' stops naming file and line; "
        "'skip' drops it and counts it in the metrics."
    )


class LlmParams(Section):
    """Queries written by an LLM behind any OpenAI-compatible chat-completions endpoint."""

    enabled: bool = Field(False, description="Generate queries with the LLM (costs money on a paid endpoint).")
    base_url: str = Field("https://api.openai.com/v1", description="The endpoint, e.g. http://localhost:8000/v1 for vLLM, "
                          "http://localhost:11434/v1 for Ollama, http://localhost:8080/v1 for llama.cpp.")
    model: str = Field("gpt-4o-mini", description="The model name the endpoint serves.")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="NAME of the environment variable holding the API key (never the key itself); "
        "'' for a local server that needs none."
    )
    styles: list[QueryStyle] = Field(
        default_factory=lambda: ["question", "keyword", "claim"], description="Kinds of query asked for, in turn."
    )
    queries_per_passage: int = Field(3, ge=1, description="Queries asked for per passage, spread over the styles in order.")
    max_passages: int = Field(1000, ge=0, description="Seeded sample of at most this many documents; 0 = every document.")
    max_passage_chars: int = Field(4000, ge=100, description="Passages are cut to this many characters in the prompt.")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=16, description="Most tokens per reply.")
    cache: str = Field(
        "",
        description="SQLite file of every reply, keyed by (model, prompt template, passage hash); outside DVC's outputs, "
        "so a re-run, a resumed run or a queued experiment never pays for a passage twice. '' = llm_queries.sqlite in "
        "the machine's cache folder (the machine setting cache_dir: the user's cache folder by default), which queued "
        "and temporary experiment runs share; a relative path is inside the project (and a queued run's copy of it).",
    )
    retry_unusable: bool = Field(
        False, description="Request again (once per run, paid again) the passages whose cached reply was empty, cut off at "
        "max_tokens or held no readable queries, replacing those replies in the cache; false keeps them (they were paid "
        "for) and skips their passages. The stage's summary says how many there are.",
    )
    system_prompt: str = Field(DEFAULT_LLM_SYSTEM_PROMPT, description="The system message.")
    prompt_template: str = Field(
        DEFAULT_LLM_PROMPT_TEMPLATE,
        description="The user message; {request} becomes the queries asked for, {example} the JSON reply form, "
        "{passage} the passage.",
    )

    @model_validator(mode="after")
    def consistent(self) -> LlmParams:
        # A model-level check: its error message never repeats the value, which may be a pasted key.
        if self.api_key_env and not ENV_VAR_NAME.fullmatch(self.api_key_env):
            raise ValueError("api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), not a key")
        if not self.styles or len(set(self.styles)) != len(self.styles):
            raise ValueError("styles must list each of question, keyword, claim at most once, and at least one")
        if self.queries_per_passage < len(self.styles):
            raise ValueError(f"queries_per_passage ({self.queries_per_passage}) must be at least the number of styles "
                             f"({len(self.styles)})")
        missing = [name for name in ("{passage}", "{request}", "{example}") if name not in self.prompt_template]
        if missing:
            raise ValueError(f"prompt_template must contain {', '.join(missing)}")
        return self


class LocalGeneratorParams(Section):
    """Queries from a Hugging Face seq2seq model (doc2query-style T5), run locally."""

    enabled: bool = Field(False, description="Generate queries with the local model.")
    model: str = Field("doc2query/msmarco-t5-base-v1", description="A seq2seq model name on the Hub, or a local folder.")
    queries_per_passage: int = Field(3, ge=1, description="Sampled queries per passage.")
    max_passages: int = Field(2000, ge=0, description="Seeded sample of at most this many documents; 0 = every document.")
    batch_size: int = Field(16, ge=1, description="Passages per generate() call.")
    max_input_tokens: int = Field(384, ge=8, description="Passage tokens given to the model.")
    max_new_tokens: int = Field(48, ge=4, description="Most tokens per query.")
    top_k: int = Field(10, ge=0, description="Sample from the k likeliest tokens (0 = no limit).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    temperature: float = Field(1.0, gt=0.0)
    input_prefix: str = Field("", description="Text put before each passage, for models trained with one.")


class QualityParams(Section):
    """Filters every candidate pair passes before it is kept."""

    min_anchor_chars: int = Field(5, ge=1, description="Shorter anchors are dropped.")
    min_positive_chars: int = Field(50, ge=1, description="Shorter positives are dropped.")
    copy_ngram: int = Field(4, ge=1, description="Word n-gram length of the copy filter.")
    max_copy_overlap: float = Field(
        0.5, ge=0.0, le=1.0, description="A query with more than this share of its word n-grams found in its passage is "
        "dropped as a copy; queries shorter than copy_ngram words are never dropped by it."
    )
    copy_filter_sources: list[PairSource] = Field(
        default_factory=lambda: ["title", "section", "first_sentence", "llm", "generated"],
        description="Sources the copy filter applies to (by default those whose queries no person wrote).",
    )
    round_trip_sources: list[CorpusPairSource] = Field(
        default_factory=lambda: ["llm", "generated"],
        description="Sources whose pairs are kept only if the base model ranks the positive within round_trip_k.",
    )
    round_trip_k: int = Field(10, ge=1, description="Rank cut-off of the round-trip filter.")


class GeneralMixParams(Section):
    """General-domain pairs mixed in to limit forgetting."""

    fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of the final pairs drawn (seeded) from data.general_pairs; 0 = none."
    )


class ReviewParams(Section):
    """The human-readable sample of kept and dropped pairs (reviews/synthesize.md)."""

    kept: int = Field(50, ge=0, description="Kept pairs shown, spread over the sources.")
    dropped: int = Field(20, ge=0, description="Dropped pairs shown with their reason, spread over the reasons.")


class SynthesizeParams(Section):
    """Which sources of training pairs are used, and their filters."""

    labelled: bool = Field(True, description="Pairs from the train split's labelled queries.")
    title_to_text: bool = Field(True, description="Pairs of (document title, document text).")
    sections: bool = Field(True, description="Pairs of (heading, section text) from Markdown/HTML/reST headings.")
    first_sentence: bool = Field(True, description="Pairs of (first sentence, rest) for documents with no title.")
    max_structure_pairs_per_source: int = Field(
        2000, ge=0,
        description="Seeded sample of at most this many pairs per corpus-structure source (title, section, "
        "first_sentence); other sources are always kept whole. 0 keeps all.",
    )
    search_log: SearchLogParams = SearchLogParams()
    llm: LlmParams = LlmParams()
    local_generator: LocalGeneratorParams = LocalGeneratorParams()
    quality: QualityParams = QualityParams()
    general_mix: GeneralMixParams = GeneralMixParams()
    review: ReviewParams = ReviewParams()


Bm25Language = Literal[("none", *BM25_LANGUAGES)]  # type: ignore[valid-type]
"""A language whose stop words bm25s ships, or 'none' (see embedft.config.choices.BM25_LANGUAGES)."""


class Bm25Params(Section):
    """How BM25 (bm25s) reads text, wherever it ranks: evaluate's BM25 and hybrid systems, and mine_negatives'
    bm25 and hybrid retrievers. The defaults are English stop words and no stemming."""

    language: Bm25Language = Field(
        "en", description="The corpus's language, by ISO 639-1 code: its stop words are left out of documents and queries "
        "('none': every word counts). Codes: " + ", ".join(BM25_LANGUAGES) + "."
    )
    stemmer: bool = Field(
        False, description="Reduce words to their stem with PyStemmer's Snowball stemmer for `language` (so 'Häuser' "
        "finds 'Haus'); needs the PyStemmer package."
    )

    @model_validator(mode="after")
    def stemmer_has_a_language(self) -> Bm25Params:
        if self.stemmer and BM25_LANGUAGES.get(self.language) is None:
            have = ", ".join(code for code, name in BM25_LANGUAGES.items() if name)
            raise ValueError(f"stemmer: true needs a language with a Snowball stemmer ({have}), not '{self.language}'")
        return self

    @property
    def stemmer_algorithm(self) -> str | None:
        """PyStemmer's name of the stemmer to use ('german'), or None for no stemming."""
        return BM25_LANGUAGES[self.language] if self.stemmer else None


class MineNegativesParams(Section):
    """Hard-negative mining: a retriever proposes candidates from a rank window; labels, score filters and an
    optional cross-encoder keep the false negatives out."""

    retriever: Literal["dense", "bm25", "hybrid"] = Field(
        "dense", description="Who proposes candidates: the dense model, BM25 (bm25s), or both fused by reciprocal rank."
    )
    model: str = Field(
        "", description="The dense model of round 1 (a name or a local path); empty = base.model, whose stored corpus "
        "embeddings are reused. Later rounds (--round 2) always mine with the previous round's fine-tuned model."
    )
    range_min: int = Field(10, ge=0, description="Skip this many top-ranked candidates (likely unlabelled positives).")
    range_max: int = Field(50, ge=1, description="Consider candidates up to this rank (reduced, with a warning, to the corpus size).")
    num_negatives: int = Field(1, ge=0, description="Negatives per pair at most; 0 disables mining. Never padded.")
    sampling: Literal["top", "random"] = Field(
        "top", description="Take the best-ranked surviving candidates, or a random draw among them (seeded by base.seed)."
    )
    max_score: float | None = Field(
        None, description="Drop a candidate whose dense score (cosine) is above this; null = off."
    )
    relative_margin: float | None = Field(
        0.05, ge=0.0, lt=1.0,
        description="Drop a candidate whose dense score is above positive - |positive| * relative_margin "
        "(0.05: above 95% of its positive's score, sentence-transformers' convention); null = off.",
    )
    cross_encoder: str = Field(
        "", description="A cross-encoder (name or local path) that rescores the candidates left by the dense filters; "
        "empty = off. Its scores then go to scored.jsonl."
    )
    cross_encoder_margin: float | None = Field(
        0.05, ge=0.0, lt=1.0,
        description="The relative margin applied to the cross-encoder's scores (same rule as relative_margin); null = off.",
    )
    review_queries: int = Field(30, ge=0, description="Queries in the seeded sample of the review file (reviews/mine_negatives.md).")
    search_backend: Literal["exact", "faiss"] = Field(
        "exact", description="Dense search: exact chunked numpy, or FAISS (optional dependency, for large corpora)."
    )
    faiss_index: str = Field(
        "Flat", description="FAISS index_factory description: Flat (exact), or approximate e.g. 'IVF4096,Flat', 'HNSW32'."
    )
    faiss_search_params: str = Field("", description="FAISS search-time parameters, e.g. 'nprobe=32' or 'efSearch=128'.")

    @model_validator(mode="after")
    def window_is_ordered(self) -> MineNegativesParams:
        if self.range_max <= self.range_min:
            raise ValueError(f"range_max ({self.range_max}) must be greater than range_min ({self.range_min})")
        return self


class RoundsParams(Section):
    """Mining/training rounds after the default one (round 1)."""

    extra: list[int] = Field(
        default_factory=list,
        description="[] = round 1 only (the default); [2] adds round 2: mine with round 1's fine-tuned model and train again.",
    )

    @model_validator(mode="after")
    def rounds_are_defined(self) -> RoundsParams:
        if self.extra not in ([], [2]):
            raise ValueError(f"dvc.yaml defines round 2 after the default round 1, so extra must be [] or [2], got {self.extra}")
        return self


LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt")


class LoraParams(Section):
    """LoRA adapters (peft): train low-rank updates of a few weight matrices instead of every weight.

    The adapters are merged into the weights before saving, so the output is a plain model.
    """

    enabled: bool = Field(False, description="Train LoRA adapters instead of the full model.")
    r: int = Field(16, ge=1, description="Rank of each low-rank update.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator: updates are scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapters' input.")
    target_modules: list[str] = Field(
        default_factory=list,
        description="Names of the modules that get adapters (e.g. [query, key, value] for BERT, [q_proj, v_proj] for "
        "Qwen/Llama); empty = peft's default for the architecture.",
    )


class TrainParams(Section):
    """Fine-tuning: the loss, batching, optimiser, precision, dev evaluation, checkpoints and LoRA."""

    loss: Literal[LOSS_NAMES] = Field(  # type: ignore[valid-type]
        "MultipleNegativesRankingLoss", description="The sentence-transformers loss; see embedft.config.losses."
    )
    gist_guide: str = Field("", description="GIST losses: the guide model; empty = base.model.")
    triplet_margin: float = Field(5.0, gt=0, description="TripletLoss: the negative must be this much farther (Euclidean).")
    hardness_mode: Literal[tuple(HARDNESS_MODES)] | None = Field(  # type: ignore[valid-type]
        None, description="MultipleNegativesRankingLoss and its Cached form: which negatives get hardness weighting "
        "(in_batch_negatives, hard_negatives, all_negatives; see embedft.config.losses); null = off.",
    )
    hardness_strength: float = Field(
        0.0, ge=0.0, description="Hardness weighting: strength * cosine (without gradient) added to each weighted "
        "negative's logit; needs hardness_mode, which needs it above 0.",
    )
    directions: list[Literal[tuple(DIRECTIONS)]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["query_to_doc"],
        description="MultipleNegativesRankingLoss and its Cached form: the contrastive terms (query_to_doc, always "
        "included; doc_to_query; query_to_query; doc_to_doc: all four with partition_mode joint is GTE's loss).",
    )
    partition_mode: Literal[tuple(PARTITION_MODES)] = Field(  # type: ignore[valid-type]
        "joint", description="How the directions share the softmax: joint (one over all) or per_direction (averaged; "
        "not with query_to_query or doc_to_doc).",
    )
    orthogonal_weight: float = Field(
        0.0, ge=0.0, description="MultipleNegativesRankingLoss: weight of the global orthogonal regulariser's two terms "
        "(texts of a batch spread out, for quantization); 0 = off.",
    )
    distill_student_temperature: float = Field(
        0.05, gt=0.0, description="DistillKLDivLoss: temperature of the student's cosine scores in its softmax over a "
        "query's candidates (0.05 = MultipleNegativesRankingLoss's scale 20).",
    )
    distill_teacher_temperature: float = Field(
        0.05, gt=0.0, description="DistillKLDivLoss: temperature of the teacher's scores (scored.jsonl); lower = a "
        "sharper target.",
    )
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(0, ge=0, description="Stop after this many optimizer steps; 0 = run `epochs`.")
    batch_size: int = Field(32, ge=2, description="Pairs per batch and device; in-batch negatives grow with it.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Batches per optimizer step. Does not add in-batch negatives (Cached* losses do)."
    )
    learning_rate: float = Field(5e-5, gt=0)
    lr_scheduler: Literal[LR_SCHEDULERS] = Field("linear", description="Learning-rate schedule after warm-up.")  # type: ignore[valid-type]
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of the steps spent warming up.")
    weight_decay: float = Field(0.01, ge=0.0)
    max_grad_norm: float = Field(1.0, ge=0.0, description="Gradient clipping norm; 0 turns clipping off.")
    max_seq_length: int = Field(128, ge=8, description="Tokens kept per text while training.")
    matryoshka_dims: list[int] = Field(
        default_factory=lambda: [384, 256, 128, 64],
        description="Widths trained by MatryoshkaLoss; [] turns Matryoshka off. Widths above the model's are "
        "skipped, and the model's full width is always trained.",
    )
    matryoshka_weights: list[float] = Field(
        default_factory=list, description="Loss weight of each width in matryoshka_dims; [] = 1 for every width."
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="'auto' picks bf16 (or fp16) on a GPU that supports it, fp32 elsewhere."
    )
    logging_steps: int = Field(
        10, ge=1, description="Log the training loss and learning rate every this many steps (and at step 1): "
        "the trainer's logging and the granularity of the training curves in plots/train/."
    )
    eval_steps: int = Field(
        50, ge=1, description="Evaluate on the dev split and save a checkpoint every this many steps (and at the last)."
    )
    dev_pool: Literal["candidates", "corpus"] = Field(
        "candidates",
        description="What the dev evaluation searches: 'candidates' = each dev query's judged documents plus its top "
        "dev_pool_k by the base model (data/embeddings/base) and by BM25 (the bm25 params), so its cost follows the dev "
        "queries, not the corpus; 'corpus' = the corpus (or a subset, see dev_max_documents).",
    )
    dev_pool_k: int = Field(
        50, ge=1, description="dev_pool candidates: documents taken per dev query from each retriever (base model, BM25)."
    )
    dev_max_documents: int = Field(
        20000, ge=0,
        description="At most this many documents in the dev search: with dev_pool corpus a seeded subset of the corpus "
        "(every dev-relevant one plus a random draw), with candidates the judged ones plus the best-ranked candidates; "
        "0 = no limit.",
    )
    keep_best: bool = Field(True, description="Output the checkpoint with the best dev nDCG@10 instead of the last.")
    early_stopping_patience: int = Field(
        3, ge=0, description="Stop after this many dev evaluations without improvement; 0 = never stop early."
    )
    early_stopping_threshold: float = Field(0.0, ge=0.0, description="Smallest dev nDCG@10 gain that counts as one.")
    report_to: list[str] = Field(
        default_factory=lambda: ["none"],
        description="Experiment trackers the trainer also logs to, as transformers' `report_to` names them "
        "(wandb, mlflow, tensorboard, dvclive, comet_ml, ...; each needs its package and its own environment "
        "variables); [none] = only the template's own curves in plots/train/. A single name may be given as a string.",
    )
    lora: LoraParams = LoraParams()

    @field_validator("report_to", mode="before")
    @classmethod
    def one_tracker_or_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def settings_are_consistent(self) -> TrainParams:
        if any(d <= 0 for d in self.matryoshka_dims):
            raise ValueError("matryoshka_dims must be positive integers")
        if self.matryoshka_weights and len(self.matryoshka_weights) != len(self.matryoshka_dims):
            raise ValueError(
                f"matryoshka_weights has {len(self.matryoshka_weights)} entries but matryoshka_dims has "
                f"{len(self.matryoshka_dims)}; give one weight per width, or [] for equal weights"
            )
        if any(w <= 0 for w in self.matryoshka_weights):
            raise ValueError("matryoshka_weights must be positive")
        self.check_loss_options()
        if "none" in self.report_to and len(self.report_to) > 1:
            raise ValueError(f"report_to lists 'none' with trackers {self.report_to}: give [none] or the trackers")
        if "all" in self.report_to:
            raise ValueError("report_to 'all' would log to every tracker that happens to be installed: name the ones you want")
        return self

    def check_loss_options(self) -> None:
        """Refuse a loss option that ``loss`` would ignore, and option values that do nothing or cannot go together."""
        for key, takers in loss_param_keys().items():
            default = type(self).model_fields[key].get_default(call_default_factory=True)
            if self.loss not in takers and getattr(self, key) != default:
                raise ValueError(f"train.{key} applies only to train.loss {' or '.join(takers)}, not {self.loss}; "
                                 f"leave it at its default ({json.dumps(default)}) or change train.loss")
        if self.orthogonal_weight and not LOSSES[self.loss].regularizable:
            takers = " or ".join(name for name, loss in LOSSES.items() if loss.regularizable)
            raise ValueError(f"train.orthogonal_weight applies only to train.loss {takers}, not {self.loss} (the "
                             "regulariser shares the loss's forward pass and needs batches without repeated texts); "
                             "set it to 0 or change train.loss")
        if self.hardness_mode is not None and self.hardness_strength == 0:
            raise ValueError(f"train.hardness_mode {self.hardness_mode} needs train.hardness_strength above 0 (Lan et al. "
                             "use 9 for in_batch_negatives, EmbeddingGemma 5 for hard_negatives); set hardness_mode "
                             "null to turn hardness weighting off")
        if self.hardness_mode is None and self.hardness_strength:
            raise ValueError(f"train.hardness_strength {self.hardness_strength:g} has no effect while train.hardness_mode "
                             "is null; name the negatives to weight (in_batch_negatives, hard_negatives or "
                             "all_negatives) or set hardness_strength to 0")
        if "query_to_doc" not in self.directions:
            raise ValueError(f"train.directions {self.directions} must include query_to_doc, the only term that holds "
                             "each query's own positive")
        if len(set(self.directions)) != len(self.directions):
            raise ValueError(f"train.directions {self.directions} lists a direction twice")
        same_type = [d for d in self.directions if d in ("query_to_query", "doc_to_doc")]
        if self.partition_mode == "per_direction" and same_type:
            raise ValueError(f"train.partition_mode per_direction cannot take train.directions {', '.join(same_type)}: "
                             "their candidates never include the positive, so a softmax of their own is ill-defined; "
                             "use partition_mode joint")


class EvaluateParams(Section):
    """Evaluation on the test split, the paired statistics, and the verdict's thresholds."""

    ndcg_at: list[int] = Field(default_factory=lambda: [10], description="Cutoffs for nDCG (graded); the first is the headline.")
    mrr_at: list[int] = Field(default_factory=lambda: [10], description="Cutoffs for MRR.")
    map_at: list[int] = Field(default_factory=lambda: [100], description="Cutoffs for MAP.")
    recall_at: list[int] = Field(default_factory=lambda: [1, 10, 100], description="Cutoffs for Recall.")
    precision_at: list[int] = Field(default_factory=lambda: [10], description="Cutoffs for Precision.")
    concatenated: bool = Field(False, description="Also evaluate base and fine-tuned embeddings concatenated.")
    out_of_domain_dir: str = Field(
        "data/out_of_domain",
        description="A BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv or qrels/test.tsv) from another domain; "
        "base and fine-tuned are scored on it to measure forgetting. Skipped while it holds no corpus.jsonl.",
    )
    leak_similarity: float = Field(
        0.95, gt=0.0, le=1.0, description="A test query this similar (cosine) to a training anchor counts as a near-duplicate."
    )
    bootstrap_resamples: int = Field(2000, ge=100, description="Resamples for the bootstrap interval and the randomisation test.")
    ship_min_ci_low: float = Field(
        0.0, description="Verdict 'ship' needs the 95% CI of the nDCG@10 gain over base to have its lower bound above this."
    )
    regression_tolerance: float = Field(
        0.01, ge=0.0,
        description="Verdict 'regression' when the headline difference to base is below minus this, "
        "or when its whole 95% interval is below zero.",
    )
    leak_relative_gain: float = Field(
        0.5, gt=0.0, description="A relative nDCG@10 gain above this is flagged as a likely train/test leak."
    )
    hybrid_normalisation: Literal["auto", "min_max", "z_score"] = Field(
        "auto", description="How `tune_hybrid` puts dense and BM25 scores on one scale: 'auto' tries both and keeps "
        "the one best on dev; 'min_max' or 'z_score' fixes it."
    )
    hybrid_weight_step: float = Field(
        0.05, gt=0.0, le=0.5, description="Step of the grid of dense-model weights 0..1 that `tune_hybrid` scores on dev."
    )
    hybrid_default_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="The dense model's weight when there are no judged dev queries; on dev, ties "
        "go to the weight closest to it."
    )
    candidate_models: list[str] = Field(
        default_factory=list, description="Other embedding models (names or local folders) scored zero-shot on dev and "
        "test as alternatives to fine-tuning; each encodes the corpus, so each costs one corpus pass. Empty: none."
    )
    rerank_cross_encoder: str = Field(
        "", description="A cross-encoder (name or local folder, safetensors) that reranks the top rerank_top_k of the "
        "system best on dev, scored as one more system. Empty: no reranking."
    )
    rerank_top_k: int = Field(20, ge=2, description="Documents per query the cross-encoder reranks.")

    @model_validator(mode="after")
    def cutoffs_are_positive(self) -> EvaluateParams:
        if not self.ndcg_at:
            raise ValueError("ndcg_at needs at least one cutoff: its first is the headline metric")
        if any(k <= 0 for k in self.cutoffs()):
            raise ValueError("metric cutoffs must be positive integers")
        return self

    @model_validator(mode="after")
    def candidates_are_named_once(self) -> EvaluateParams:
        # The names become system names, CSV cells and JSON keys: unique, non-empty, and no CSV quoting needed.
        for name in self.candidate_models:
            if not name.strip() or any(c in name for c in ',"\n'):
                raise ValueError(f"candidate_models: '{name}' must be a non-empty name or path without commas or quotes")
        if len(set(self.candidate_models)) != len(self.candidate_models):
            raise ValueError("candidate_models lists a model twice")
        return self

    def cutoffs(self) -> list[int]:
        """Every cutoff of every metric."""
        return [*self.ndcg_at, *self.mrr_at, *self.map_at, *self.recall_at, *self.precision_at]

    def measures(self) -> tuple[str, ...]:
        """The ir-measures names of the configured metrics, e.g. ('nDCG@10', 'RR@10', ...)."""
        groups = (("nDCG", self.ndcg_at), ("RR", self.mrr_at), ("AP", self.map_at), ("R", self.recall_at), ("P", self.precision_at))
        return tuple(dict.fromkeys(f"{name}@{k}" for name, ks in groups for k in ks))

    @property
    def depth(self) -> int:
        """Documents retrieved per query: the deepest cutoff."""
        return max(self.cutoffs())

    @property
    def headline(self) -> str:
        """The metric the statistics and verdict are about, e.g. 'ndcg@10'."""
        return f"ndcg@{self.ndcg_at[0]}"


class TruncateEvalParams(Section):
    """Matryoshka truncation and quantization: quality at each embedding width and precision."""

    dims: list[int] = Field(default_factory=lambda: [384, 256, 128, 64, 32])
    precisions: list[Literal["float32", "int8", "binary"]] = Field(
        default_factory=lambda: ["float32", "int8", "binary"], description="Embedding precisions crossed with each dim."
    )
    default_dim: int = Field(
        0, ge=0, description="The width you plan to ship; its gain over the full-width base gets a bootstrap CI. 0 = the largest dim."
    )

    @model_validator(mode="after")
    def dims_are_positive(self) -> TruncateEvalParams:
        if not self.dims or any(d <= 0 for d in self.dims):
            raise ValueError("dims must be a non-empty list of positive integers")
        if self.default_dim and self.default_dim not in self.dims:
            raise ValueError(f"default_dim {self.default_dim} must be one of dims {self.dims}")
        if not self.precisions:
            raise ValueError("precisions must name at least one of float32, int8, binary")
        return self

    @property
    def chosen_dim(self) -> int:
        """The width whose gain gets a confidence interval."""
        return self.default_dim or max(self.dims)


class ExportParams(Section):
    """Optional exports of the fine-tuned model, each made and checked by its own stage (export@<format>)."""

    formats: list[Literal["onnx"]] = Field(
        default_factory=list,
        description="Formats to export to; dvc.yaml makes one stage per entry. [] (the default) exports nothing; "
        "[onnx] writes models/finetuned-onnx (onnx/model.onnx plus the tokenizer and configuration).",
    )
    onnx_opset: int = Field(17, ge=14, le=23, description="ONNX opset of the exported graph; 17 runs on onnxruntime 1.14 and later.")
    tolerance: float = Field(
        1e-4, gt=0.0, description="Largest absolute difference allowed between ONNX and PyTorch embeddings (unit vectors)."
    )
    check_texts: int = Field(
        64, ge=1, description="Corpus documents (and as many short prefixes of them) encoded by both models for the check."
    )

    @model_validator(mode="after")
    def formats_are_unique(self) -> ExportParams:
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"formats lists a format twice: {self.formats}")
        return self


class PublishParams(Section):
    """Publishing the fine-tuned model to a Hugging Face Hub repository: `python -m stages.publish`, never run by
    `dvc repro`. The token comes from the environment variable HF_TOKEN only, never from this file."""

    repo_id: str = Field("", description="The Hub repository, e.g. your-org/your-model; '' = publishing is off.")
    private: bool = Field(True, description="Create the repository private (an existing repository keeps its visibility).")
    revision: str = Field("main", description="The branch the commit goes to.")
    onnx: bool = Field(True, description="Also upload onnx/model.onnx when export.formats has onnx.")
    license: str = Field(
        "", description="The card's licence (a Hub licence id, e.g. apache-2.0); '' = the base model's, where its card names one."
    )
    datasets: list[str] = Field(
        default_factory=list, description="Hub dataset ids the model was trained on, for the card's `datasets`; [] = none "
        "named (a local corpus has no Hub id)."
    )
    allow_regression: bool = Field(False, description="Publish even when the verdict is 'regression'.")
    allow_suspected_leak: bool = Field(False, description="Publish even when evaluate suspects a train/test leak.")

    @model_validator(mode="after")
    def repo_id_is_a_repository(self) -> PublishParams:
        if self.repo_id and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.repo_id):
            raise ValueError(f"repo_id must be '<user or organisation>/<name>', got {self.repo_id!r}")
        return self


class Params(Section):
    """The whole ``params.yaml``."""

    base: BaseParams = BaseParams()
    data: DataParams = DataParams()
    ingest: IngestParams = IngestParams()
    split: SplitParams = SplitParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    bm25: Bm25Params = Bm25Params()
    mine_negatives: MineNegativesParams = MineNegativesParams()
    rounds: RoundsParams = RoundsParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    truncate_eval: TruncateEvalParams = TruncateEvalParams()
    export: ExportParams = ExportParams()
    publish: PublishParams = PublishParams()


def load_params(path: Path | str = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate ``params.yaml``.

    Args:
        path: the params file. Missing sections take their defaults; unknown keys and wrong types fail.

    Raises:
        PipelineError: naming the file and each offending key path.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found")
    return validate(Params, read_yaml_mapping(path), path)
