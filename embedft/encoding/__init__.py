"""Models and their vectors: loading a model offline and safely on the right device, encoding with prompts,
storing corpus embeddings for reuse, counting texts longer than a model's window, and cross-encoders (loaded safely,
pairs scored once)."""

from embedft.encoding.cross_encoder import CachedPairScorer, load_cross_encoder
from embedft.encoding.encoder import encode
from embedft.encoding.models import (
                                     check_local_path,
                                     is_out_of_memory,
                                     load_failure,
                                     load_model,
                                     load_model_with,
                                     pick_device,
                                     resolve_model_path,
)
from embedft.encoding.store import StoredEmbeddings, corpus_embeddings, load_embeddings, save_embeddings
from embedft.encoding.token_window import count_over_window, text_token_counter, truncation_warning

__all__ = ["CachedPairScorer", "StoredEmbeddings", "check_local_path", "load_failure", "corpus_embeddings", "count_over_window",
           "encode", "is_out_of_memory", "load_cross_encoder", "load_embeddings", "load_model", "load_model_with", "pick_device",
           "resolve_model_path", "save_embeddings", "text_token_counter", "truncation_warning"]
