"""Stage `export@<format>`: an optional copy of the fine-tuned model in another format, checked against PyTorch.

dvc.yaml makes one stage per entry of ``export.formats`` (none by default). ``onnx`` writes
``models/finetuned-onnx``: the model's configuration and tokenizer plus ``onnx/model.onnx`` (see
stages/onnx_export.py), and ``metrics/export_onnx.json`` with how far its embeddings are from the PyTorch
model's on corpus documents. A difference above ``export.tolerance`` fails the stage and leaves no export.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.atomic import atomic_path, write_json_atomic
from stages.data_io import read_corpus
from stages.errors import PipelineError, run_stage
from stages.models import load_model
from stages.onnx_encoder import ONNX_FILE, OnnxSentenceEncoder
from stages.onnx_export import check_embeddings, copy_model_files, export_onnx
from stages.params import ExportParams, load_params
from stages.paths import CORPUS_FILE, FINETUNED_MODEL_DIR, METRICS_DIR

FORMATS = ("onnx",)


def export_dir(export_format: str) -> Path:
    """Where the exported model goes: ``models/finetuned-<format>``."""
    return FINETUNED_MODEL_DIR.with_name(f"{FINETUNED_MODEL_DIR.name}-{export_format}")


def check_texts(documents: list[str], count: int) -> list[str]:
    """The first ``count`` documents plus their first words: short and long inputs, so padding and truncation
    are both exercised."""
    chosen = documents[:count]
    return chosen + [" ".join(text.split()[:4]) for text in chosen]


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export the fine-tuned model to another format.")
    parser.add_argument("--format", choices=FORMATS, required=True)
    export_format = parser.parse_args(argv).format
    settings = load_params().export
    documents = [document.full_text for document in read_corpus(CORPUS_FILE).values()]
    report = export_model(FINETUNED_MODEL_DIR, export_dir(export_format), check_texts(documents, settings.check_texts), settings)
    write_json_atomic(METRICS_DIR / f"export_{export_format}.json", report)
    print(f"export: {export_dir(export_format)}: {report['texts']} embeddings within {report['max_abs_diff']:.2g} of PyTorch's "
          f"(lowest cosine {report['min_cosine']:.6f}); {report['onnx_megabytes']} MB")


if __name__ == "__main__":
    run_stage(main)
