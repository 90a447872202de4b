"""Other formats of the fine-tuned model, each checked against the PyTorch model's embeddings: ONNX, and an
encoder that serves it with onnxruntime alone."""

from embedft.export.onnx_encoder import ONNX_FILE, OnnxSentenceEncoder
from embedft.export.onnx_export import check_embeddings, check_texts, copy_model_files, export_model, export_onnx

__all__ = ["ONNX_FILE", "OnnxSentenceEncoder", "check_embeddings", "check_texts", "copy_model_files", "export_model",
           "export_onnx"]
