"""Export a sentence-transformers model to ONNX in the layout sentence-transformers' ONNX backend reads, and
check that the exported graph gives the PyTorch model's embeddings.

The graph is traced with ``torch.onnx`` (sentence-transformers' own exporter needs optimum-onnx, which
requires transformers < 4.58). It takes the tokenizer's tensors and has two outputs:

- ``last_hidden_state``: the token embeddings, which is what ``SentenceTransformer(folder, backend="onnx")``
  (with optimum-onnx installed) feeds to the model's own pooling;
- ``sentence_embedding``: pooling and normalisation included, for onnxruntime alone
  (:class:`embedft.encoding.onnx_encoder.OnnxSentenceEncoder`).

Both the `export@onnx` stage (embedft.export) and the ONNX encoding backend (embedft.encoding.backends) use it.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from embedft.core import PipelineError
from embedft.encoding.onnx_encoder import ONNX_FILE, SENTENCE_OUTPUT, TOKEN_OUTPUT, OnnxSentenceEncoder

PYTORCH_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
"""PyTorch weight files, left out of the exported folder: the ONNX graph holds the weights."""


class SentenceEmbeddingGraph(torch.nn.Module):
    """The module that is traced: the tokenizer's tensors in, token and sentence embeddings out."""

    def __init__(self, model: SentenceTransformer, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model(dict(zip(self.input_names, tensors)))
        return features["token_embeddings"], features["sentence_embedding"]


def check_exportable(model: SentenceTransformer) -> None:
    """Refuse models whose ONNX layout sentence-transformers would not find: the first module must be a
    Transformer saved at the folder's root (how sentence-transformers saves the models this template trains)."""
    first = model[0]
    if type(first).__name__ != "Transformer" or not hasattr(first, "tokenizer"):
        raise PipelineError(f"ONNX export needs a model whose first module is a Transformer, not {type(first).__name__}")


def copy_model_files(source: Path, destination: Path) -> None:
    """Copy the model folder's configuration and tokenizer (everything but the PyTorch weights)."""
    shutil.copytree(source, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*PYTORCH_WEIGHTS, "onnx"))


def export_onnx(model: SentenceTransformer, folder: Path, opset: int) -> Path:
    """Trace ``model`` (on the CPU, in eval mode) into ``folder/onnx/model.onnx`` and return that path.

    Args:
        model: the sentence-transformers model to export.
        folder: the exported model folder (see :func:`copy_model_files`).
        opset: the ONNX opset version; 17 runs on onnxruntime 1.14 and later.
    """
    check_exportable(model)
    model = model.to("cpu").eval()
    tokenizer = model.tokenizer
    input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in tokenizer.model_input_names]
    # Two texts of different lengths, so the traced graph sees padding; batch and sequence axes stay dynamic.
    example = tokenizer(["an example sentence to trace", "short"], padding=True, return_tensors="pt")
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, TOKEN_OUTPUT]}
    dynamic_axes[SENTENCE_OUTPUT] = {0: "batch"}
    path = folder / ONNX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript; its tracer
        # warns about Python conditions on shapes, which hold for every padded batch. check_embeddings verifies.
        warnings.simplefilter("ignore")
        torch.onnx.export(SentenceEmbeddingGraph(model, input_names), tuple(example[name] for name in input_names), str(path),
                          input_names=input_names, output_names=[TOKEN_OUTPUT, SENTENCE_OUTPUT], dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    return path


def check_embeddings(model: SentenceTransformer, encoder: OnnxSentenceEncoder, texts: list[str], batch_size: int = 16) -> dict:
    """Encode ``texts`` with both models, once per saved prompt (or once without), and compare.

    Returns:
        ``max_abs_diff`` (largest absolute difference of any coordinate), ``min_cosine`` (lowest cosine similarity
        between a text's two embeddings), ``texts`` (inputs compared, prompts included) and ``dimension``.
    """
    prompt_names = sorted(name for name, text in (model.prompts or {}).items() if text) or [None]
    differences, cosines = [], []
    for prompt_name in prompt_names:
        expected = model.encode(texts, batch_size=batch_size, prompt_name=prompt_name, convert_to_numpy=True,
                                show_progress_bar=False).astype(np.float32)
        actual = encoder.encode(texts, batch_size=batch_size, prompt_name=prompt_name)
        differences.append(float(np.abs(expected - actual).max()))
        norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(actual, axis=1)
        cosines.append(float(((expected * actual).sum(axis=1) / np.maximum(norms, 1e-12)).min()))
    return {"max_abs_diff": max(differences), "min_cosine": min(cosines), "texts": len(texts) * len(prompt_names),
            "dimension": encoder.dimension}


def check_texts(documents: list[str], count: int) -> list[str]:
    """The first ``count`` documents plus their first words: short and long inputs, so padding and truncation
    are both exercised."""
    chosen = documents[:count]
    return chosen + [" ".join(text.split()[:4]) for text in chosen]
