"""Other formats of the fine-tuned model, each checked against the PyTorch model's embeddings: ONNX, and an
encoder that serves it with onnxruntime alone; and publishing the model to a Hugging Face Hub repository."""

from embedft.export.hub import TOKEN_VARIABLE, hub_token, publish_files, refusal, upload
from embedft.export.onnx_encoder import ONNX_FILE, OnnxSentenceEncoder
from embedft.export.onnx_export import check_embeddings, check_texts, copy_model_files, export_model, export_onnx

__all__ = ["ONNX_FILE", "OnnxSentenceEncoder", "TOKEN_VARIABLE", "check_embeddings", "check_texts", "copy_model_files",
           "export_model", "export_onnx", "hub_token", "publish_files", "refusal", "upload"]
