"""The training loss named by `train.loss` (see the registry :data:`embedft.config.LOSSES`), with the global
orthogonal regulariser added when `train.orthogonal_weight` is above 0, optionally wrapped in MatryoshkaLoss."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from sentence_transformers import SentenceTransformer, util
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer import losses

from embedft.config import LOSSES, MachineSettings, TrainParams
from embedft.core import PipelineError

logger = logging.getLogger(__name__)


class OrthogonalRegularizedLoss(torch.nn.Module):
    """A loss plus sentence-transformers' GlobalOrthogonalRegularizationLoss over the same embeddings.

    The regulariser pushes the mean cosine of a batch's unrelated texts (each column: the queries, the positives,
    the negatives) towards 0 and their mean squared cosine down to 1/dimension, i.e. spreads the embeddings over
    the sphere, which keeps them apart once quantized to int8 or binary (Zhang et al. 2017; EmbeddingGemma). It is
    a separate loss in sentence-transformers, meant to be summed with the main one; here both share one forward
    pass: the columns are embedded once and handed to each loss's ``compute_loss_from_embeddings``. Inside
    MatryoshkaLoss every trained width is regularised.

    Args:
        model: the model being trained.
        loss: the main loss; it must compute its value from embeddings (``compute_loss_from_embeddings``).
        weight: the weight of both regulariser terms (mean and second moment), added to the main loss.
    """

    def __init__(self, model: SentenceTransformer, loss: torch.nn.Module, weight: float) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.weight = weight
        self.regularizer = losses.GlobalOrthogonalRegularizationLoss(model, mean_weight=weight, second_moment_weight=weight)

    def forward(self, sentence_features: Iterable[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        terms = self.regularizer.compute_loss_from_embeddings(embeddings)
        return self.loss.compute_loss_from_embeddings(embeddings, labels) + sum(terms.values())

    def get_config_dict(self) -> dict[str, object]:
        """What the trainer's own model card data records of a loss."""
        return {"loss": type(self.loss).__name__, "orthogonal_weight": self.weight}


def matryoshka_schedule(model_dim: int, dims: list[int], weights: list[float]) -> tuple[list[int], list[float]]:
    """The widths MatryoshkaLoss trains and their weights, widest first.

    Widths above the model's are dropped (with a note in the log); the model's own width is always trained (added
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
        logger.info("matryoshka widths %s are above the model's %d and are skipped", dropped, model_dim)
    kept.setdefault(model_dim, 1.0)
    ordered = sorted(kept, reverse=True)
    return ordered, [float(kept[d]) for d in ordered]


def base_loss(model: SentenceTransformer, settings: TrainParams, machine: MachineSettings,
              guide: SentenceTransformer | None, world_size: int) -> torch.nn.Module:
    """The loss itself, before any Matryoshka wrapping, built from its registry entry.

    Args:
        model: the model being trained.
        settings: `train.loss` and its options (e.g. triplet_margin, hardness_mode), and `orthogonal_weight`.
        machine: the mini-batch size of the Cached losses.
        guide: the frozen guide model for the GIST losses; ignored by the others.
        world_size: training processes; above 1, in-batch negatives are gathered from every process.
    """
    spec = LOSSES[settings.loss]
    options: dict[str, object] = {keyword: getattr(settings, key) for keyword, key in spec.params}
    if spec.needs_guide:
        if guide is None:
            raise PipelineError(f"params.yaml: train.loss {spec.name} needs a guide model (train.gist_guide, or base.model when empty)")
        options["guide"] = guide
    if spec.cached:
        options["mini_batch_size"] = machine.train_mini_batch_size
    if spec.gathers:
        options["gather_across_devices"] = world_size > 1
    if spec.similarity:
        options["similarity_fct"] = getattr(util, spec.similarity)
    loss = getattr(losses, spec.name)(model, **options)
    # TrainParams refuses orthogonal_weight for a loss that is not `regularizable`.
    return OrthogonalRegularizedLoss(model, loss, settings.orthogonal_weight) if settings.orthogonal_weight else loss


def build_loss(model: SentenceTransformer, settings: TrainParams, machine: MachineSettings,
               guide: SentenceTransformer | None = None, world_size: int = 1) -> torch.nn.Module:
    """The configured loss, inside MatryoshkaLoss over :func:`matryoshka_schedule` unless `matryoshka_dims` is empty."""
    loss = base_loss(model, settings, machine, guide, world_size)
    if not settings.matryoshka_dims:
        return loss
    dims, weights = matryoshka_schedule(model.get_embedding_dimension(), settings.matryoshka_dims, settings.matryoshka_weights)
    return losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims, matryoshka_weights=weights)


def describe_loss(loss: torch.nn.Module) -> str:
    """A one-line description for logs and the model card, e.g. 'MatryoshkaLoss(MultipleNegativesRankingLoss, dims 384/256)'
    or 'MultipleNegativesRankingLoss + GlobalOrthogonalRegularizationLoss (weight 0.1)'."""
    if isinstance(loss, losses.MatryoshkaLoss):
        dims = "/".join(str(d) for d in loss.matryoshka_dims)
        weights = "/".join(f"{w:g}" for w in loss.matryoshka_weights)
        return f"MatryoshkaLoss({describe_loss(loss.loss)}, dims {dims}, weights {weights})"
    if isinstance(loss, OrthogonalRegularizedLoss):
        return f"{type(loss.loss).__name__} + {type(loss.regularizer).__name__} (weight {loss.weight:g})"
    return type(loss).__name__
