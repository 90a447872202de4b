"""Other formats of the fine-tuned model, each checked against the PyTorch model's embeddings: ONNX (traced and
served by embedft.encoding's ONNX graph and encoder), and publishing the model to a Hugging Face Hub repository."""

from embedft.encoding import ONNX_FILE, OnnxSentenceEncoder, check_embeddings, check_texts, copy_model_files, export_onnx
from embedft.export.hub import TOKEN_VARIABLE, hub_token, publish_files, refusal, upload
from embedft.export.onnx_export import export_model

__all__ = ["ONNX_FILE", "OnnxSentenceEncoder", "TOKEN_VARIABLE", "check_embeddings", "check_texts", "copy_model_files",
           "export_model", "export_onnx", "hub_token", "publish_files", "refusal", "upload"]
