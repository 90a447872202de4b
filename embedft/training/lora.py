"""LoRA through peft: add adapters before training, merge them into the weights before saving.

The adapters are added with sentence-transformers' ``model.add_adapter`` (peft injected into the transformers
model), so checkpoints hold only the adapter weights and load back into the same structure (resuming and
keeping the best checkpoint work unchanged). The saved output is merged: a plain model that
``SentenceTransformer(path)`` loads without peft and without the base model's files.
"""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer

from embedft.config import LoraParams
from embedft.core import PipelineError


def lora_config(settings: LoraParams):
    """The peft LoraConfig for `train.lora` (target modules empty = peft's default for the architecture)."""
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.target_modules) or None, bias="none")


def add_lora(model: SentenceTransformer, settings: LoraParams, gradient_checkpointing: bool = False) -> tuple[int, int]:
    """Freeze the model and add trainable LoRA adapters; return (trainable, total) parameter counts.

    Raises:
        PipelineError: naming `train.lora.target_modules` when peft cannot place the adapters.
    """
    try:
        model.add_adapter(lora_config(settings))
    except ValueError as error:
        names = sorted({name.rsplit(".", 1)[-1] for name, module in model.transformers_model.named_modules()
                        if isinstance(module, torch.nn.Linear)})
        raise PipelineError(
            f"params.yaml: train.lora.target_modules {settings.target_modules or '(peft default)'} do not fit "
            f"{type(model.transformers_model).__name__}: {str(error).rstrip('.')}. Linear layers of this model: {', '.join(names)}"
        ) from None
    if gradient_checkpointing:
        # With frozen embeddings no input requires grad, and checkpointed blocks would get no gradient.
        model.transformers_model.enable_input_require_grads()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def merge_lora(model: SentenceTransformer, base_model: SentenceTransformer) -> None:
    """Fold the trained adapters into the weights and make ``model`` a plain model again.

    Each adapter-carrying layer is merged (weight += scale * B @ A) and replaced by its base layer; the merged
    weights are then loaded, strictly, into ``base_model``'s fresh transformer, which replaces ``model``'s (so no
    adapter bookkeeping is left for ``save`` to act on).

    Args:
        model: the trained model (adapters added by :func:`add_lora`).
        base_model: a fresh copy of the base model, whose transformer is consumed.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    inner = model.transformers_model
    for name, module in list(inner.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(inner.get_submodule(parent) if parent else inner, child, module.get_base_layer())
    plain = base_model.transformers_model
    plain.load_state_dict(inner.state_dict(), strict=True)
    model[0].model = plain.to(model.device)
