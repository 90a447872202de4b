"""The sentence-transformers losses `train.loss` can name, each with what it needs: one registry, read by the
params' validation, the shaping of the training data, the trainer's batch sampler and the loss builder.

======================================  ===========================================================================
MultipleNegativesRankingLoss, Cached*   (anchor, positive, negative_1..k): every mined negative, plus in-batch ones
GISTEmbedLoss, CachedGISTEmbedLoss      (anchor, positive, negative): one row per mined negative (the loss takes at
                                        most one), or (anchor, positive) when a pair has none; a guide model
                                        (train.gist_guide, or base.model) drops in-batch negatives it ranks too high
TripletLoss                             (anchor, positive, negative): one row per mined negative; pairs without a
                                        negative are skipped
CoSENTLoss                              (anchor, text, score): the positive and every scored negative, each with
                                        its teacher score (scored.jsonl); the loss learns to order pairs by score
MarginMSELoss                           (anchor, positive, negative_1..k, label): label_i = positive_score -
                                        negative_score_i (scored.jsonl); pairs without a scored negative are skipped
DistillKLDivLoss                        (anchor, positive, negative_1..k, label): label = [positive_score,
                                        negative_score_1..k] (scored.jsonl); listwise distillation: the student's
                                        softmax over a query's candidates (cosine scores) learns the teacher's;
                                        pairs without a scored negative are skipped
======================================  ===========================================================================

The Cached losses compute the same loss as their plain forms a mini-batch at a time, so memory follows the
machine setting ``train_mini_batch_size``, not ``train.batch_size``.

MultipleNegativesRankingLoss and its Cached form take the hardness weighting (``train.hardness_mode``,
``train.hardness_strength``) and the extra contrastive directions (``train.directions``, ``train.partition_mode``);
MultipleNegativesRankingLoss alone takes the global orthogonal regulariser (``train.orthogonal_weight``), which
shares its forward pass (a Cached loss embeds in its own mini-batches, and GIST scores with its guide).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loss:
    """What one loss needs from the data, the trainer and the builder.

    Attributes:
        name: the class name in ``sentence_transformers.sentence_transformer.losses``.
        in_batch_negatives: the other rows of a batch serve as negatives, so no text may repeat in a batch (the
            NO_DUPLICATES sampler); losses without in-batch negatives get plain random batches.
        scored: trains on teacher scores (``scored.jsonl``) rather than on the mined rows.
        one_negative: takes at most one negative per example, so a row with k negatives becomes k examples.
        needs_negatives: a pair without any negative cannot be used.
        needs_guide: takes a frozen guide model (GIST).
        cached: computes the loss a mini-batch at a time (GradCache).
        gathers: can gather in-batch negatives from every process of a multi-GPU run.
        params: ``train.*`` keys passed to the loss, as (keyword argument, params key) pairs. A key that some
            loss takes is refused at its non-default value when ``train.loss`` is a loss that does not take it.
        label: what a scored loss's ``label`` column holds: ``margins`` (positive_score - negative_score_i, one
            per negative) or ``scores`` (the teacher's scores, the positive's first); empty for the others.
        similarity: the ``sentence_transformers.util`` function the loss scores a (query, document) pair with,
            where its own default does not fit the project's cosine retrieval; empty = the loss's default.
        regularizable: the orthogonal regulariser (``train.orthogonal_weight``) can be added: the loss computes
            its value from the batch's embeddings, which the regulariser then shares, and its batches hold no
            repeated text (whose similarity to itself the regulariser would count as a collision).
    """

    name: str
    in_batch_negatives: bool
    scored: bool = False
    one_negative: bool = False
    needs_negatives: bool = False
    needs_guide: bool = False
    cached: bool = False
    gathers: bool = False
    params: tuple[tuple[str, str], ...] = ()
    label: str = ""
    similarity: str = ""
    regularizable: bool = False

    @property
    def batch_sampler(self) -> str:
        """The trainer's batch sampler: no repeated text in a batch where the batch holds the negatives."""
        return "no_duplicates" if self.in_batch_negatives else "batch_sampler"


HARDNESS_MODES: dict[str, str] = {
    "in_batch_negatives": "the other rows' texts (Lan et al. 2025, who use strength 9); works without mined negatives",
    "hard_negatives": "the row's own mined negatives only (EmbeddingGemma, strength 5); no effect without them",
    "all_negatives": "both",
}
"""`train.hardness_mode`: which negatives get ``hardness_strength * cos(query, negative)`` (without gradient) added to
their logit, so the softmax weighs the negatives the model already finds close more heavily."""

DIRECTIONS: dict[str, str] = {
    "query_to_doc": "each query against every document of the batch (the standard InfoNCE term; always included)",
    "doc_to_query": "each positive against every query (the symmetric term)",
    "query_to_query": "each query against the other queries (GTE)",
    "doc_to_doc": "each positive against the other rows' documents (GTE)",
}
"""`train.directions`: the contrastive terms; all four with partition_mode ``joint`` is GTE's improved contrastive
loss (Li et al. 2023), query_to_doc + doc_to_query with ``per_direction`` the symmetric InfoNCE of Jina."""

PARTITION_MODES: dict[str, str] = {
    "joint": "one softmax over the candidates of every direction",
    "per_direction": "one softmax per direction, averaged; not with query_to_query or doc_to_doc, whose candidates "
                     "never include the positive",
}
"""`train.partition_mode`: how the directions share the softmax's denominator."""

CONTRASTIVE_PARAMS: tuple[tuple[str, str], ...] = (
    ("hardness_mode", "hardness_mode"), ("hardness_strength", "hardness_strength"),
    ("directions", "directions"), ("partition_mode", "partition_mode"),
)
"""The options of MultipleNegativesRankingLoss and its Cached form (sentence-transformers 5.3 and later)."""

LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("MultipleNegativesRankingLoss", in_batch_negatives=True, gathers=True, params=CONTRASTIVE_PARAMS,
         regularizable=True),
    Loss("CachedMultipleNegativesRankingLoss", in_batch_negatives=True, cached=True, gathers=True, params=CONTRASTIVE_PARAMS),
    Loss("GISTEmbedLoss", in_batch_negatives=True, one_negative=True, needs_guide=True, gathers=True),
    Loss("CachedGISTEmbedLoss", in_batch_negatives=True, one_negative=True, needs_guide=True, cached=True, gathers=True),
    Loss("TripletLoss", in_batch_negatives=False, one_negative=True, needs_negatives=True,
         params=(("triplet_margin", "triplet_margin"),)),
    Loss("CoSENTLoss", in_batch_negatives=False, scored=True),
    Loss("MarginMSELoss", in_batch_negatives=False, scored=True, needs_negatives=True, label="margins"),
    Loss("DistillKLDivLoss", in_batch_negatives=False, scored=True, needs_negatives=True, label="scores",
         similarity="pairwise_cos_sim", params=(("student_temperature", "distill_student_temperature"),
                                                ("teacher_temperature", "distill_teacher_temperature"))),
)}
"""Every loss `train.loss` can name, by name."""
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)


def loss_param_keys() -> dict[str, tuple[str, ...]]:
    """Each ``train.*`` key that only some losses take -> the losses that take it, in registry order."""
    takers: dict[str, list[str]] = {}
    for loss in LOSSES.values():
        for _, key in loss.params:
            takers.setdefault(key, []).append(loss.name)
    return {key: tuple(names) for key, names in takers.items()}
