"""Stage `export@<format>`: an optional copy of the fine-tuned model in another format, checked against PyTorch.

dvc.yaml makes one stage per entry of ``export.formats`` (none by default). ``onnx`` writes
``models/finetuned-onnx``: the model's configuration and tokenizer plus ``onnx/model.onnx`` (see
embedft/export/onnx_export.py), and ``metrics/export_onnx.json`` with how far its embeddings are from the PyTorch
model's on corpus documents. A difference above ``export.tolerance`` fails the stage and leaves no export.
"""

from __future__ import annotations

import argparse

from embedft.config import load_params
from embedft.core import read_corpus, run_stage, write_json_atomic
from embedft.core.artifacts import CORPUS_FILE, FINETUNED_MODEL_DIR, export_dir, export_metrics
from embedft.export import check_texts, export_model

FORMATS = ("onnx",)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export the fine-tuned model to another format.")
    parser.add_argument("--format", choices=FORMATS, required=True)
    export_format = parser.parse_args(argv).format
    settings = load_params().export
    documents = [document.full_text for document in read_corpus(CORPUS_FILE).values()]
    destination = export_dir(export_format)
    report = export_model(FINETUNED_MODEL_DIR, destination, check_texts(documents, settings.check_texts), settings)
    write_json_atomic(export_metrics(export_format), report)
    print(f"export: {destination}: {report['texts']} embeddings within {report['max_abs_diff']:.2g} of PyTorch's "
          f"(lowest cosine {report['min_cosine']:.6f}); {report['onnx_megabytes']} MB")


if __name__ == "__main__":
    run_stage(main)
