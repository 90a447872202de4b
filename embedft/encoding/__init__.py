"""Models and their vectors: loading a model offline and safely on the right device, encoding with prompts,
encoding the corpus in resumable shards (PyTorch, onnxruntime or Ray) into a memory-mapped store for reuse, the
ONNX graph both the ONNX backend and the export use, and counting texts longer than a model's window."""

from embedft.encoding.backends import inference_dtype
from embedft.encoding.corpus_store import store_corpus_embeddings
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

__all__ = ["ONNX_FILE", "OnnxSentenceEncoder", "StoredEmbeddings", "check_embeddings", "check_local_path", "check_texts",
           "copy_model_files", "corpus_embeddings", "count_over_window", "encode", "export_onnx", "inference_dtype",
           "is_out_of_memory", "load_embeddings", "load_failure", "load_model", "load_model_with", "pick_device",
           "resolve_model_path", "save_embeddings", "store_corpus_embeddings", "text_token_counter", "truncation_warning"]
