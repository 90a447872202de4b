"""The training loss named by `train.loss`, optionally wrapped in MatryoshkaLoss."""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer import losses

from stages.errors import PipelineError
from stages.params import TrainParams

GUIDED_LOSSES = ("GISTEmbedLoss", "CachedGISTEmbedLoss")
"""Losses that need a guide model (the base model unless `train.gist_guide` names another)."""


def matryoshka_schedule(model_dim: int, dims: list[int], weights: list[float]) -> tuple[list[int], list[float]]:
    """The widths MatryoshkaLoss trains and their weights, widest first.

    Widths above the model's are dropped (a note is printed); the model's own width is always trained (added
    with weight 1 when not listed), so the full embedding never gets worse for the sake of its prefixes.

    Args:
        model_dim: the model's embedding width.
        dims: `train.matryoshka_dims`.
        weights: `train.matryoshka_weights`, one per width, or empty for equal weights.
    """
    weights = list(weights) or [1.0] * len(dims)
    kept = {d: w for d, w in zip(dims, weights) if d <= model_dim}
    if not kept:
        raise PipelineError(f"params.yaml: train.matryoshka_dims {dims} are all above the model's dimension {model_dim}")
    dropped = sorted({d for d in dims if d > model_dim}, reverse=True)
    if dropped:
        print(f"train: matryoshka widths {dropped} are above the model's {model_dim} and are skipped")
    kept.setdefault(model_dim, 1.0)
    ordered = sorted(kept, reverse=True)
    return ordered, [float(kept[d]) for d in ordered]


def base_loss(model: SentenceTransformer, settings: TrainParams, guide: SentenceTransformer | None, world_size: int) -> torch.nn.Module:
    """The loss itself, before any Matryoshka wrapping.

    Args:
        model: the model being trained.
        settings: `train.loss` and its options (mini_batch_size, triplet_margin).
        guide: the frozen guide model for the GIST losses; ignored by the others.
        world_size: training processes; above 1, in-batch negatives are gathered from every process.
    """
    gather = world_size > 1
    name = settings.loss
    if name in GUIDED_LOSSES and guide is None:
        raise PipelineError(f"params.yaml: train.loss {name} needs a guide model (train.gist_guide, or base.model when empty)")
    if name == "MultipleNegativesRankingLoss":
        return losses.MultipleNegativesRankingLoss(model, gather_across_devices=gather)
    if name == "CachedMultipleNegativesRankingLoss":
        return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=settings.mini_batch_size, gather_across_devices=gather)
    if name == "GISTEmbedLoss":
        return losses.GISTEmbedLoss(model, guide, gather_across_devices=gather)
    if name == "CachedGISTEmbedLoss":
        return losses.CachedGISTEmbedLoss(model, guide, mini_batch_size=settings.mini_batch_size, gather_across_devices=gather)
    if name == "TripletLoss":
        return losses.TripletLoss(model, triplet_margin=settings.triplet_margin)
    if name == "CoSENTLoss":
        return losses.CoSENTLoss(model)
    if name == "MarginMSELoss":
        return losses.MarginMSELoss(model)
    raise PipelineError(f"params.yaml: train.loss {name!r} is not supported")


def build_loss(
    model: SentenceTransformer, settings: TrainParams, guide: SentenceTransformer | None = None, world_size: int = 1
) -> torch.nn.Module:
    """The configured loss, inside MatryoshkaLoss over :func:`matryoshka_schedule` unless `matryoshka_dims` is empty."""
    loss = base_loss(model, settings, guide, world_size)
    if not settings.matryoshka_dims:
        return loss
    dims, weights = matryoshka_schedule(model.get_embedding_dimension(), settings.matryoshka_dims, settings.matryoshka_weights)
    return losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims, matryoshka_weights=weights)


def describe_loss(loss: torch.nn.Module) -> str:
    """A one-line description for logs and the model card, e.g. 'MatryoshkaLoss(MultipleNegativesRankingLoss, dims 384/256)'."""
    if isinstance(loss, losses.MatryoshkaLoss):
        dims = "/".join(str(d) for d in loss.matryoshka_dims)
        weights = "/".join(f"{w:g}" for w in loss.matryoshka_weights)
        return f"MatryoshkaLoss({type(loss.loss).__name__}, dims {dims}, weights {weights})"
    return type(loss).__name__
