"""Typed, validated access to ``params.yaml``.

Every stage validates the whole file before doing any work, so a typo in any section is caught at once,
but it only *uses* (and only lists as a DVC dependency) the sections it needs.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stages.errors import PipelineError

DEFAULT_PARAMS_PATH = Path("params.yaml")


class Section(BaseModel):
    """A params section: unknown keys are errors, so a misspelt key never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class BaseParams(Section):
    """Settings shared by every stage that touches a model."""

    seed: int = Field(42, description="Seed for every random choice: splits, sampling, training.")
    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Base model: a sentence-transformers name or a local path.",
    )
    query_prompt: str = Field("", description="Text put before every query (e.g. bge's instruction).")
    document_prompt: str = Field("", description="Text put before every document.")
    max_seq_length: int = Field(256, ge=8, description="Tokens kept per text when encoding.")
    encode_batch_size: int = Field(64, ge=1, description="Texts per forward pass when encoding.")
    device: str = Field("auto", description="'auto' (CUDA, then MPS, then CPU), or a torch device string.")
    search_chunk_size: int = Field(
        50_000, ge=1, description="Corpus rows scored at once in exact search; bounds memory, not results."
    )


class DataParams(Section):
    """Where the dataset lives, in BEIR layout."""

    dir: str = Field("data/sample", description="Dataset folder; a DVC dependency of the stages that read it.")
    corpus: str = Field("corpus.jsonl", description="Corpus file inside `dir`: one {_id, title, text} per line.")
    queries: str = Field("queries.jsonl", description="Queries file inside `dir`; may be absent (no labels).")
    qrels: str = Field(
        "qrels.tsv",
        description="Judgements inside `dir`: a TSV split by `split`, or a folder of train/dev/test.tsv used as given.",
    )


class SplitParams(Section):
    """How labelled queries are divided into train, dev and test."""

    train_fraction: float = Field(0.6, ge=0.0, le=1.0)
    dev_fraction: float = Field(0.1, ge=0.0, le=1.0)
    test_fraction: float = Field(0.3, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def fractions_sum_to_one(self) -> "SplitParams":
        total = self.train_fraction + self.dev_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train_fraction + dev_fraction + test_fraction must be 1, got {total:g}")
        return self


class SynthesizeParams(Section):
    """Which sources of training pairs are used, and their filters."""

    labelled: bool = Field(True, description="Pairs from the train split's labelled queries.")
    title_to_text: bool = Field(True, description="Pairs of (document title, document text).")
    sections: bool = Field(True, description="Pairs of (heading, section text) from Markdown/reST headings.")
    first_sentence: bool = Field(True, description="Pairs of (first sentence, rest) for documents with no title.")
    min_positive_chars: int = Field(50, ge=1, description="Shorter positives are dropped.")
    min_anchor_chars: int = Field(5, ge=1, description="Shorter anchors are dropped.")
    max_structure_pairs_per_source: int = Field(
        2000, ge=0,
        description="Seeded sample of at most this many pairs per corpus-structure source (title, section, "
        "first_sentence); labelled pairs are always kept whole. 0 keeps all.",
    )


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
    cross_encoder_batch_size: int = Field(32, ge=1, description="(query, document) pairs per cross-encoder forward pass.")
    review_queries: int = Field(30, ge=0, description="Queries in the seeded sample of the review file (reviews/mine_negatives.md).")
    search_backend: Literal["exact", "faiss"] = Field(
        "exact", description="Dense search: exact chunked numpy, or FAISS (optional dependency, for large corpora)."
    )
    search_memory_mb: float = Field(
        1024, ge=1, description="Working memory of one exact-search block in MiB; bounds memory whatever the corpus size."
    )
    faiss_index: str = Field(
        "Flat", description="FAISS index_factory description: Flat (exact), or approximate e.g. 'IVF4096,Flat', 'HNSW32'."
    )
    faiss_search_params: str = Field("", description="FAISS search-time parameters, e.g. 'nprobe=32' or 'efSearch=128'.")

    @model_validator(mode="after")
    def window_is_ordered(self) -> "MineNegativesParams":
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
    def rounds_are_defined(self) -> "RoundsParams":
        if self.extra not in ([], [2]):
            raise ValueError(f"dvc.yaml defines round 2 after the default round 1, so extra must be [] or [2], got {self.extra}")
        return self


class TrainParams(Section):
    """Fine-tuning with MultipleNegativesRankingLoss inside MatryoshkaLoss."""

    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=2, description="Pairs per batch; in-batch negatives grow with it.")
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    max_seq_length: int = Field(256, ge=8, description="Tokens kept per text while training.")
    matryoshka_dims: list[int] = Field(default_factory=lambda: [384, 256, 128, 64])
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="'auto' picks bf16/fp16 on a GPU that supports it, fp32 on CPU."
    )
    logging_steps: int = Field(
        10, ge=1, description="Log the training loss and learning rate every this many steps (and at step 1): "
        "the trainer's logging and the granularity of the training curves in plots/train/."
    )

    @model_validator(mode="after")
    def dims_are_positive(self) -> "TrainParams":
        if any(d <= 0 for d in self.matryoshka_dims):
            raise ValueError("matryoshka_dims must be positive integers")
        return self


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

    @model_validator(mode="after")
    def cutoffs_are_positive(self) -> "EvaluateParams":
        if not self.ndcg_at:
            raise ValueError("ndcg_at needs at least one cutoff: its first is the headline metric")
        if any(k <= 0 for k in self.cutoffs()):
            raise ValueError("metric cutoffs must be positive integers")
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
    def dims_are_positive(self) -> "TruncateEvalParams":
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


class Params(Section):
    """The whole ``params.yaml``."""

    base: BaseParams = BaseParams()
    data: DataParams = DataParams()
    split: SplitParams = SplitParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    mine_negatives: MineNegativesParams = MineNegativesParams()
    rounds: RoundsParams = RoundsParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    truncate_eval: TruncateEvalParams = TruncateEvalParams()


def _known_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``location`` (a pydantic error path) in the schema."""
    for part in location:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def describe_validation_error(error: ValidationError, source: Path) -> str:
    """One readable line per problem, each naming the dotted key path, with a 'did you mean' for typos."""
    lines = []
    for problem in error.errors():
        location = problem["loc"]
        key = ".".join(str(part) for part in location) or "(top level)"
        if problem["type"] == "extra_forbidden":
            known = _known_keys(Params, location[:-1])
            guess = difflib.get_close_matches(str(location[-1]), known, n=1)
            hint = f"; did you mean '{'.'.join([*map(str, location[:-1]), guess[0]])}'?" if guess else ""
            lines.append(f"{source}: unknown key '{key}'{hint}")
        else:
            given = problem.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"{source}: key '{key}': {problem['msg']}{shown}")
    return "\n".join(lines)


def load_params(path: Path | str = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate ``params.yaml``.

    Args:
        path: the params file. Missing sections take their defaults; unknown keys and wrong types fail.

    Raises:
        PipelineError: naming the file and each offending key path.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise PipelineError(f"{path}: params file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PipelineError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise PipelineError(describe_validation_error(error, path)) from None
