"""Command `publish`: upload the fine-tuned model to the Hugging Face Hub repository `publish.repo_id`.

``python -m stages.publish [--dry-run]``. Not a stage of ``dvc.yaml``, so ``dvc repro`` never runs it: it
changes something outside the project (a Hub repository) and makes no file DVC could cache, and a push should
happen when a person decides, not whenever an input changed. Run it after ``dvc repro`` (or ``dvc pull``).

It uploads ``models/finetuned`` as DVC cached it, its card replaced by the card with the test metrics
(``model-index``, the verdict with its interval, the Matryoshka and quantization table: made here from the cached
card and ``reports/evaluate.json`` and ``reports/truncate.json`` of the same commit), and ``onnx/`` from
``models/finetuned-onnx`` when ``export.formats`` has onnx. It refuses a regression or a suspected leak unless
``publish.allow_regression`` / ``publish.allow_suspected_leak`` say otherwise. The token comes from ``HF_TOKEN``
only. ``--dry-run`` checks the same, prints the files and the card, and uploads nothing (no token needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from embedft.config import load_params
from embedft.core import PipelineError, run_stage
from embedft.core.artifacts import FINETUNED_MODEL_DIR, TRUNCATE_REPORT, export_dir, round_paths
from embedft.export import hub_token, publish_files, refusal, upload
from embedft.training import card_with_test_metrics


def read_report(path: Path) -> dict:
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run `dvc repro` (or `dvc pull`) before publishing")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Upload the fine-tuned model to the Hub repository publish.repo_id.")
    parser.add_argument("--dry-run", action="store_true", help="check and print what would be uploaded; upload nothing")
    dry_run = parser.parse_args(argv).dry_run
    params = load_params()
    settings = params.publish
    if not settings.repo_id:
        raise PipelineError("params.yaml: publish.repo_id is empty, so publishing is off: set it to the Hub repository "
                            "to publish to (your-org/your-model)")
    evaluation = read_report(round_paths(1).evaluate_report)
    if reason := refusal(evaluation, settings):
        raise PipelineError(f"publish: not publishing {FINETUNED_MODEL_DIR}: {reason}")
    card_file = FINETUNED_MODEL_DIR / "README.md"
    if not card_file.is_file():
        raise PipelineError(f"{card_file}: not found; run `dvc repro` (or `dvc pull`) before publishing")
    truncation = json.loads(TRUNCATE_REPORT.read_text(encoding="utf-8")) if TRUNCATE_REPORT.is_file() else None
    card = card_with_test_metrics(
        card_file.read_text(encoding="utf-8"), evaluation, truncation, model_name=settings.repo_id,
        dataset=Path(params.data.dir).name, headline=params.evaluate.headline,
        metadata={"license": settings.license, "datasets": settings.datasets})
    onnx = export_dir("onnx") / "onnx" if settings.onnx and "onnx" in params.export.formats else None
    files = publish_files(FINETUNED_MODEL_DIR, card, onnx)
    verdict = evaluation.get("verdict", "not measured")
    if dry_run:
        print(f"publish: dry run: {len(files)} files would go to {settings.repo_id} (verdict: {verdict}):")
        for path in files:
            print(f"  {path}")
        print(card)
        return
    url = upload(files, settings, hub_token(), message=f"Upload the fine-tuned model (verdict: {verdict})")
    print(f"publish: {len(files)} files to {settings.repo_id} ({'private' if settings.private else 'public'} if new; "
          f"verdict: {verdict}): {url}")


if __name__ == "__main__":
    run_stage(main)
