"""Sentence embeddings from an exported ONNX model with onnxruntime alone: no torch, no optimum.

The model folder is the one the `export@onnx` stage writes (``models/finetuned-onnx``): the
sentence-transformers configuration and tokenizer, and ``onnx/model.onnx``, whose ``sentence_embedding`` output
already includes the model's pooling and normalisation. ::

    from onnx_encoder import OnnxSentenceEncoder   # this file, copied into the serving image
    encoder = OnnxSentenceEncoder("models/finetuned-onnx")
    vectors = encoder.encode(["how do I parse JSON?"], prompt_name="query")

This file imports nothing of the project and needs only numpy, onnxruntime and transformers (for the
tokenizer), so it can be copied into a serving image on its own (``embedft.encoding`` itself also loads torch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ONNX_FILE = Path("onnx") / "model.onnx"
"""Where the graph lives inside the model folder: the layout sentence-transformers' ONNX backend reads."""
SENTENCE_OUTPUT = "sentence_embedding"
TOKEN_OUTPUT = "last_hidden_state"


class OnnxSentenceEncoder:
    """Encode texts with ``onnx/model.onnx`` the way ``SentenceTransformer.encode`` does with the PyTorch model.

    Args:
        folder: the exported model folder.
        providers: onnxruntime execution providers, best first; default CPU.
        threads: intra-op threads for onnxruntime; None lets it decide (all physical cores).
    """

    def __init__(self, folder: str | Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        folder = Path(folder)
        if not (folder / ONNX_FILE).is_file():
            raise FileNotFoundError(f"{folder / ONNX_FILE}: no ONNX model (export it with `dvc repro export@onnx`)")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), options,
                                                    providers=providers or ["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        # sentence-transformers 6 keeps the length in the tokenizer's model_max_length; older models in sentence_bert_config
        self.max_seq_length = _read_json(folder / "sentence_bert_config.json").get("max_seq_length") or self.tokenizer.model_max_length
        settings = _read_json(folder / "config_sentence_transformers.json")
        self.prompts: dict[str, str] = settings.get("prompts") or {}
        self.default_prompt_name: str | None = settings.get("default_prompt_name")

    def encode(self, texts: list[str], batch_size: int = 32, prompt_name: str | None = None, prompt: str | None = None,
               truncate_dim: int | None = None) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 array of shape (len(texts), dim).

        Args:
            texts: the inputs.
            batch_size: texts per onnxruntime call; texts are sorted by length first, as sentence-transformers
                does, so each batch pads little.
            prompt_name: a key of the model's saved prompts ("query" or "document" for models this template
                trains with prompts); its text is put before every input. None uses the model's default prompt, if any.
            prompt: a literal prompt instead of ``prompt_name``.
            truncate_dim: keep only the first this many dimensions (Matryoshka), like sentence-transformers'
                ``truncate_dim``: the vectors are cut after normalisation, so compare them by cosine similarity.
        """
        prompt_name = prompt_name or (None if prompt is not None else self.default_prompt_name)
        if prompt is None and prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError(f"prompt_name '{prompt_name}' is not one of the model's prompts {sorted(self.prompts)}")
            prompt = self.prompts[prompt_name]
        inputs = [f"{prompt or ''}{text}" for text in texts]
        order = np.argsort([-len(text) for text in inputs], kind="stable")
        vectors: list[np.ndarray] = []
        for start in range(0, len(inputs), batch_size):
            batch = [inputs[i] for i in order[start : start + batch_size]]
            encoded = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np")
            feed = {name: encoded[name].astype(np.int64) for name in self.input_names}
            vectors.append(self.session.run([SENTENCE_OUTPUT], feed)[0])
        if not vectors:
            return np.zeros((0, self.dimension), dtype=np.float32)
        stacked = np.concatenate(vectors).astype(np.float32)
        result = np.empty_like(stacked)
        result[order] = stacked
        return result[:, :truncate_dim] if truncate_dim else result

    @property
    def dimension(self) -> int:
        """Width of the sentence embeddings, from the graph's output shape."""
        output = next(node for node in self.session.get_outputs() if node.name == SENTENCE_OUTPUT)
        return int(output.shape[-1])


def _read_json(path: Path) -> dict:
    """A JSON config file of the model folder, or {} when the model has none."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
