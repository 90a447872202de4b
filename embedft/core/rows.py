"""The rows that pass between stages, one type each: documents, relevance judgements, training pairs, and the
mined and scored rows of `mine_negatives` (see :mod:`embedft.core.stage_files` for their files)."""

from __future__ import annotations

from dataclasses import dataclass

Qrels = dict[str, dict[str, int]]
"""Relevance judgements: query id -> document id -> graded relevance (> 0 is relevant)."""


@dataclass(frozen=True)
class Document:
    """One corpus entry."""

    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """Title and text as one passage: what a retriever sees."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class Pair:
    """A training pair (a row of ``pairs.jsonl``).

    Attributes:
        anchor: the query-like text.
        positive: the passage it should retrieve.
        positive_id: the positive's corpus id; empty when it is not a corpus document (general-domain pairs).
        source: where the pair came from, one of :data:`embedft.config.choices.PAIR_SOURCES`.
    """

    anchor: str
    positive: str
    positive_id: str
    source: str

    def as_row(self) -> dict[str, str]:
        return {"anchor": self.anchor, "positive": self.positive, "positive_id": self.positive_id, "source": self.source}


@dataclass(frozen=True)
class MinedRow:
    """A row of ``negatives.jsonl``: a training pair's texts with its hard negatives, hardest first.

    A pair the miner found no negative for has none: rows are never padded.
    """

    anchor: str
    positive: str
    source: str
    negatives: tuple[str, ...] = ()

    def as_row(self) -> dict[str, str]:
        row = {"anchor": self.anchor, "positive": self.positive, "source": self.source}
        return {**row, **{f"negative_{i}": text for i, text in enumerate(self.negatives, start=1)}}


@dataclass(frozen=True)
class ScoredRow:
    """A row of ``scored.jsonl``: a mined row with the teacher's score of the positive and of each negative.

    Attributes:
        score_source: who scored: ``cross_encoder`` or ``dense`` (the mining model's cosine).
    """

    anchor: str
    positive: str
    source: str
    negatives: tuple[str, ...]
    positive_score: float
    negative_scores: tuple[float, ...]
    score_source: str = ""

    def as_row(self) -> dict:
        return {"anchor": self.anchor, "positive": self.positive, "source": self.source, "negatives": list(self.negatives),
                "positive_score": self.positive_score, "negative_scores": list(self.negative_scores),
                "score_source": self.score_source}

