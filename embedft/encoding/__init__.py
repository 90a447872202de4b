"""Models and their vectors: loading a model offline and safely on the right device, encoding with prompts,
storing corpus embeddings for reuse: encoded in resumable shards (PyTorch, onnxruntime or Ray) into a
memory-mapped store, the ONNX graph both the ONNX backend and the export use, counting texts longer than a model's
window, and cross-encoders (loaded safely, pairs scored once)."""

from embedft.encoding.backends import inference_dtype
from embedft.encoding.corpus_store import store_corpus_embeddings
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
from embedft.encoding.onnx_encoder import ONNX_FILE, OnnxSentenceEncoder
from embedft.encoding.onnx_graph import check_embeddings, check_texts, copy_model_files, export_onnx
from embedft.encoding.store import StoredEmbeddings, corpus_embeddings, load_embeddings, save_embeddings
from embedft.encoding.token_window import count_over_window, text_token_counter, truncation_warning

__all__ = ["CachedPairScorer", "ONNX_FILE", "OnnxSentenceEncoder", "StoredEmbeddings", "check_embeddings", "check_local_path",
           "check_texts", "copy_model_files", "corpus_embeddings", "count_over_window", "encode", "export_onnx", "inference_dtype",
           "is_out_of_memory", "load_cross_encoder", "load_embeddings", "load_failure", "load_model", "load_model_with",
           "pick_device", "resolve_model_path", "save_embeddings", "store_corpus_embeddings", "text_token_counter",
           "truncation_warning"]
