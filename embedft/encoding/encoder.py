"""Encoding texts to unit vectors with a sentence-transformers model, with a query or document prompt."""

from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer


def encode(
    model: SentenceTransformer,
    texts: list[str],
    prompt: str = "",
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Encode texts to L2-normalised float32 vectors.

    Args:
        model: the encoder.
        texts: what to encode.
        prompt: text put before each input (a query or document instruction); empty for none.
        batch_size: texts per forward pass.
        progress: show a progress bar.
    """
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        texts,
        prompt=prompt or None,
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)
