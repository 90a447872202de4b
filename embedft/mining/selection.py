"""Choosing hard negatives from a retriever's candidates while keeping false negatives out, and measuring how
many false negatives get through.

For each training pair the candidates of its anchor's rank window are considered in order (rank order, or a
seeded shuffle for random sampling). A candidate is dropped, for the first reason that applies, when it is

1. ``labelled_positive``: a positive of any pair sharing the anchor, or judged relevant to it in the qrels;
2. ``copy_of_positive``: another document with the same text as one of those positives;
3. ``max_score``: its dense score is above ``max_score``;
4. ``relative_margin``: its dense score is above ``positive - |positive| * relative_margin``;
5. ``cross_encoder``: (only when a cross-encoder is configured, for the candidates the dense filters left) its
   cross-encoder score is above the same bound computed on the cross-encoder's score of the positive.

The first ``num_negatives`` survivors are the negatives. Fewer survivors give a shorter row, never a random
document. The cross-encoder is consulted lazily, a round at a time over all pairs, only until each pair has
its negatives, so it scores a few candidates per pair rather than the whole window.

The audit measures the false-negative rate with the labels as the oracle: for pairs whose anchor has
labelled qrels, the selection is repeated with the miner told only the pair's own positive, once without
and once with the score filters; the share of the chosen negatives that the qrels call relevant is the
false-negative rate before and after the filters.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from embedft.core import Pair, normalise_query
from embedft.mining.corpus_index import CorpusIndex

REASONS = ("", "labelled_positive", "copy_of_positive", "max_score", "relative_margin", "cross_encoder")
"""Why a candidate was dropped, by code; code 0 means it passed every filter applied to it."""
KEPT, LABELLED_POSITIVE, COPY_OF_POSITIVE, MAX_SCORE, RELATIVE_MARGIN, CROSS_ENCODER = range(len(REASONS))
SCORE_FILTERS = (MAX_SCORE, RELATIVE_MARGIN, CROSS_ENCODER)


@dataclass(frozen=True)
class Window:
    """The retriever's candidates for one anchor: ranks ``range_min`` up to ``range_max``, best first."""

    rows: np.ndarray
    """Corpus rows (int64)."""
    ranks: np.ndarray
    """Each candidate's 0-based rank in the retriever's list."""
    scores: np.ndarray
    """Dense score (anchor vector . document vector) of each candidate."""


@dataclass
class Selection:
    """One pair's candidates in the order they are considered, each one's fate, and the chosen negatives."""

    anchor: str
    positive: str
    rows: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    positive_score: float
    reasons: np.ndarray
    """Per candidate: 0 = kept so far, else an index into :data:`REASONS`."""
    cross_scores: np.ndarray
    """Per candidate: the cross-encoder's score, NaN where it was not consulted."""
    positive_cross_score: float | None = None
    chosen: list[int] = field(default_factory=list)
    """Positions (into the arrays above) of the chosen negatives, in the order they were chosen."""
    cursor: int = 0
    """Candidates before this position have been considered."""

    @property
    def chosen_rows(self) -> list[int]:
        return [int(self.rows[position]) for position in self.chosen]


Judge = Callable[[list[tuple[Selection, int]]], None]
"""Rescores a batch of (selection, candidate position); sets the reason of those it rejects."""


def relative_bound(positive_score: float, margin: float) -> float:
    """The score a candidate may not exceed: ``positive - |positive| * margin`` (sentence-transformers' rule)."""
    return positive_score - abs(positive_score) * margin


def pair_seed(seed: int, pair: Pair) -> int:
    """A seed for one pair's random draw that does not depend on the other pairs or their order."""
    digest = hashlib.sha256(f"{seed}\0{pair.anchor}\0{pair.positive_id}\0{pair.positive}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def new_selection(pair: Pair, window: Window, positive_score: float, sampling: str, seed: int) -> Selection:
    """The pair's candidates in the order they will be considered: rank order, or a seeded shuffle."""
    order = np.arange(len(window.rows))
    if sampling == "random":
        shuffled = order.tolist()
        random.Random(pair_seed(seed, pair)).shuffle(shuffled)
        order = np.array(shuffled, dtype=np.int64)
    return Selection(
        anchor=pair.anchor, positive=pair.positive, rows=window.rows[order], ranks=window.ranks[order],
        scores=window.scores[order], positive_score=positive_score,
        reasons=np.zeros(len(order), dtype=np.int8), cross_scores=np.full(len(order), np.nan, dtype=np.float32),
    )


def member_of(rows: np.ndarray, chosen: set[int]) -> np.ndarray:
    """A mask of the ``rows`` that are in ``chosen`` (for a window of tens of rows, faster than ``np.isin``)."""
    return np.array([row in chosen for row in rows.tolist()], dtype=bool)


def apply_filters(
    selection: Selection, excluded: set[int], copies: set[int], max_score: float | None, relative_margin: float | None
) -> None:
    """Mark each candidate with the first reason that drops it: known positive, copy, max_score, relative margin."""
    rules = [(LABELLED_POSITIVE, member_of(selection.rows, excluded)), (COPY_OF_POSITIVE, member_of(selection.rows, copies))]
    if max_score is not None:
        rules.append((MAX_SCORE, selection.scores > max_score))
    if relative_margin is not None:
        rules.append((RELATIVE_MARGIN, selection.scores > relative_bound(selection.positive_score, relative_margin)))
    for code, dropped in rules:
        selection.reasons[(selection.reasons == KEPT) & dropped] = code


def fill(selections: list[Selection], num_negatives: int, judge: Judge | None = None) -> None:
    """Choose up to ``num_negatives`` candidates per selection, in order, from those no filter dropped.

    With a ``judge`` (the cross-encoder), candidates are examined in rounds: each round asks, for every
    selection still short, just as many next candidates as it lacks, and the judge rescores them all at once.
    """
    while True:
        batch = []
        for selection in selections:
            wanted = num_negatives - len(selection.chosen)
            while wanted > 0 and selection.cursor < len(selection.rows):
                position = selection.cursor
                selection.cursor += 1
                if selection.reasons[position] == KEPT:
                    batch.append((selection, position))
                    wanted -= 1
        if not batch:
            return
        if judge is not None:
            judge(batch)
        for selection, position in batch:
            if selection.reasons[position] == KEPT:
                selection.chosen.append(position)


@dataclass
class FalseNegativeAudit:
    """Labelled-relevant documents among mined negatives, for pairs whose anchor has labelled qrels."""

    pairs: int = 0
    pairs_with_other_positives: int = 0
    negatives: dict[str, int] = field(default_factory=lambda: {"before_filters": 0, "after_filters": 0, "output": 0})
    labelled_relevant: dict[str, int] = field(default_factory=lambda: {"before_filters": 0, "after_filters": 0, "output": 0})
    window_relevant: int = 0
    window_relevant_dropped: int = 0
    window_others: int = 0
    window_others_dropped: int = 0

    def count(self, stage: str, selection: Selection, relevant: set[int]) -> None:
        """Add one selection's chosen negatives, and how many of them are labelled relevant, to ``stage``."""
        self.negatives[stage] += len(selection.chosen)
        self.labelled_relevant[stage] += sum(row in relevant for row in selection.chosen_rows)

    def count_dense_filters(self, selection: Selection, relevant: set[int]) -> None:
        """How the dense score filters treat the window's labelled-relevant candidates and the rest."""
        considered = selection.reasons != LABELLED_POSITIVE
        is_relevant = member_of(selection.rows, relevant) & considered
        dropped = np.isin(selection.reasons, (MAX_SCORE, RELATIVE_MARGIN))
        others = considered & ~is_relevant & (selection.reasons != COPY_OF_POSITIVE)
        self.window_relevant += int(is_relevant.sum())
        self.window_relevant_dropped += int((is_relevant & dropped).sum())
        self.window_others += int(others.sum())
        self.window_others_dropped += int((others & dropped).sum())

    def report(self) -> dict:
        """The ``false_negatives`` block of metrics/mine.json: counts and rates (0.0 where nothing was counted)."""
        def rate(part: int, whole: int) -> float:
            return round(part / whole, 6) if whole else 0.0

        stages = {
            stage: {"negatives": self.negatives[stage], "labelled_relevant": self.labelled_relevant[stage],
                    "rate": rate(self.labelled_relevant[stage], self.negatives[stage])}
            for stage in ("before_filters", "after_filters", "output")
        }
        return {
            "audited_pairs": self.pairs,
            "audited_pairs_with_other_labelled_positives": self.pairs_with_other_positives,
            **stages,
            "window_labelled_relevant": self.window_relevant,
            "dense_filters_catch_rate": rate(self.window_relevant_dropped, self.window_relevant),
            "dense_filters_drop_rate_others": rate(self.window_others_dropped, self.window_others),
        }


@dataclass
class MiningResult:
    """The output selection of every pair (in the order of the pairs) and the false-negative audit."""

    selections: list[Selection]
    audit: FalseNegativeAudit


def pooled_positives(pairs: list[Pair]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Positive document ids and positive texts of each anchor, pooled over all pairs sharing it."""
    ids: dict[str, set[str]] = defaultdict(set)
    texts: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        if pair.positive_id:
            ids[pair.anchor].add(pair.positive_id)
        texts[pair.anchor].add(pair.positive)
    return ids, texts


def mine_hard_negatives(
    pairs: list[Pair],
    windows: dict[str, Window],
    positive_scores: list[float],
    index: CorpusIndex,
    labelled: dict[str, set[str]],
    num_negatives: int,
    sampling: str,
    max_score: float | None,
    relative_margin: float | None,
    seed: int,
    judge: Judge | None = None,
) -> MiningResult:
    """Choose each pair's negatives from its anchor's window and audit the false negatives.

    Args:
        pairs: the training pairs.
        windows: each anchor's candidates.
        positive_scores: the dense score of each pair's own positive, in the order of ``pairs``.
        index: the corpus, to find positives and copies of them.
        labelled: relevant document ids by normalised query text, from the train split's qrels; every one is
            excluded from the anchor's negatives, and they are the oracle of the audit.
        num_negatives: negatives per pair at most.
        sampling: ``top`` (rank order) or ``random`` (a seeded shuffle of the window).
        max_score: dense score above which a candidate is dropped; None = off.
        relative_margin: drop candidates above ``positive - |positive| * relative_margin``; None = off.
        seed: seeds the random sampling, per pair.
        judge: rescores candidates that passed the dense filters (the cross-encoder); None = off.
    """
    pooled_ids, pooled_texts = pooled_positives(pairs)
    known: dict[str, tuple[set[int], set[int]]] = {}
    selections, audited = [], []
    audit = FalseNegativeAudit()
    for pair, positive_score in zip(pairs, positive_scores):
        window = windows[pair.anchor]
        if pair.anchor not in known:  # every pair of an anchor shares its exclusions
            excluded = index.rows_of(pooled_ids[pair.anchor] | labelled.get(normalise_query(pair.anchor), set()))
            known[pair.anchor] = excluded, index.copies_among(window.rows, pooled_texts[pair.anchor], excluded) - excluded
        selection = new_selection(pair, window, positive_score, sampling, seed)
        apply_filters(selection, *known[pair.anchor], max_score, relative_margin)
        selections.append(selection)
        relevant_ids = labelled.get(normalise_query(pair.anchor))
        if relevant_ids:
            # The miner is told only this pair's own positive; the anchor's other labelled positives stand in
            # for the unlabelled positives every corpus has.
            own = index.rows_of([pair.positive_id])
            own_copies = index.copies_among(window.rows, [pair.positive], own) - own
            labelled_rows = index.rows_of(relevant_ids)
            relevant = (labelled_rows | index.copies_among(window.rows, (), labelled_rows)) - own - own_copies
            before = new_selection(pair, window, positive_score, sampling, seed)
            apply_filters(before, own, own_copies, None, None)
            after = new_selection(pair, window, positive_score, sampling, seed)
            apply_filters(after, own, own_copies, max_score, relative_margin)
            audit.count_dense_filters(after, relevant)
            audit.pairs += 1
            audit.pairs_with_other_positives += bool(relevant)
            audited.append((selection, before, after, relevant))
    fill(selections, num_negatives, judge)
    fill([before for _, before, _, _ in audited], num_negatives)
    fill([after for _, _, after, _ in audited], num_negatives, judge)
    for selection, before, after, relevant in audited:
        audit.count("before_filters", before, relevant)
        audit.count("after_filters", after, relevant)
        audit.count("output", selection, relevant)
    return MiningResult(selections, audit)


def drop_counts(selections: list[Selection]) -> dict[str, int]:
    """Candidates dropped by each filter, over all selections."""
    codes = np.concatenate([s.reasons for s in selections]) if selections else np.zeros(0, dtype=np.int8)
    return {name: int((codes == code).sum()) for code, name in enumerate(REASONS) if code != KEPT}


PairScorer = Callable[[list[tuple[str, str]]], list[float]]
"""Scores (query, document) text pairs, e.g. a cross-encoder."""


def cross_encoder_judge(score_pairs: PairScorer, doc_texts: list[str], margin: float | None) -> Judge:
    """A :data:`Judge` that rescores candidates (and, once per selection, its positive) with ``score_pairs`` and
    drops those above ``positive - |positive| * margin`` on the new scores (None: rescore only)."""

    def judge(batch: list[tuple[Selection, int]]) -> None:
        unscored = list({id(s): s for s, _ in batch if s.positive_cross_score is None}.values())
        scores = score_pairs([(s.anchor, s.positive) for s in unscored]
                             + [(s.anchor, doc_texts[int(s.rows[position])]) for s, position in batch])
        for selection, score in zip(unscored, scores):
            selection.positive_cross_score = float(score)
        for (selection, position), score in zip(batch, scores[len(unscored):]):
            selection.cross_scores[position] = score
            if margin is not None and score > relative_bound(selection.positive_cross_score, margin):
                selection.reasons[position] = CROSS_ENCODER

    return judge


def score_positives(selections: list[Selection], score_pairs: PairScorer) -> None:
    """Give every selection a cross-encoder score of its positive (those the judge never consulted lack one)."""
    missing = [s for s in selections if s.positive_cross_score is None]
    for selection, score in zip(missing, score_pairs([(s.anchor, s.positive) for s in missing])):
        selection.positive_cross_score = float(score)
