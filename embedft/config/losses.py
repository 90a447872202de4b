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
======================================  ===========================================================================

The Cached losses compute the same loss as their plain forms a mini-batch at a time, so memory follows the
machine setting ``train_mini_batch_size``, not ``train.batch_size``.
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
        params: ``train.*`` keys passed to the loss, as (keyword argument, params key) pairs.
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

    @property
    def batch_sampler(self) -> str:
        """The trainer's batch sampler: no repeated text in a batch where the batch holds the negatives."""
        return "no_duplicates" if self.in_batch_negatives else "batch_sampler"


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("MultipleNegativesRankingLoss", in_batch_negatives=True, gathers=True),
    Loss("CachedMultipleNegativesRankingLoss", in_batch_negatives=True, cached=True, gathers=True),
    Loss("GISTEmbedLoss", in_batch_negatives=True, one_negative=True, needs_guide=True, gathers=True),
    Loss("CachedGISTEmbedLoss", in_batch_negatives=True, one_negative=True, needs_guide=True, cached=True, gathers=True),
    Loss("TripletLoss", in_batch_negatives=False, one_negative=True, needs_negatives=True,
         params=(("triplet_margin", "triplet_margin"),)),
    Loss("CoSENTLoss", in_batch_negatives=False, scored=True),
    Loss("MarginMSELoss", in_batch_negatives=False, scored=True, needs_negatives=True),
)}
"""Every loss `train.loss` can name, by name."""
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)
