"""The `export@onnx` stage's export of the fine-tuned model: the traced graph (embedft.encoding's ONNX graph),
written atomically and checked against the PyTorch model's embeddings within ``export.tolerance``."""

from __future__ import annotations

from pathlib import Path

from embedft.config import ExportParams
from embedft.core import PipelineError, atomic_path
from embedft.encoding import ONNX_FILE, OnnxSentenceEncoder, check_embeddings, copy_model_files, export_onnx, load_model


def export_model(source: Path, destination: Path, texts: list[str], settings: ExportParams) -> dict:
    """Export ``source`` to ONNX in ``destination`` (atomically) and return the consistency check's numbers.

    Raises:
        PipelineError: when the embeddings differ by more than ``settings.tolerance``; nothing is left behind.
    """
    model = load_model(str(source), device="cpu")
    with atomic_path(destination, is_dir=True) as folder:
        copy_model_files(source, folder)
        export_onnx(model, folder, settings.onnx_opset)
        report = check_embeddings(model, OnnxSentenceEncoder(folder), texts)
        if report["max_abs_diff"] > settings.tolerance:
            raise PipelineError(
                f"params.yaml: export.tolerance: the ONNX embeddings differ from PyTorch's by up to {report['max_abs_diff']:.3g} "
                f"(cosine down to {report['min_cosine']:.6f}), more than the tolerance {settings.tolerance:g}; no export written")
        report["onnx_megabytes"] = round((folder / ONNX_FILE).stat().st_size / 2**20, 1)
    report["opset"] = settings.onnx_opset
    return report
