"""Command `publish`: upload the fine-tuned model to the Hugging Face Hub repository `publish.repo_id`.

``python -m stages.publish [--dry-run]``. Not a stage of ``dvc.yaml``, so ``dvc repro`` never runs it: it
changes something outside the project (a Hub repository) and makes no file DVC could cache, and a push should
happen when a person decides, not whenever an input changed. Run it after ``dvc repro`` (or ``dvc pull``).

It uploads ``models/finetuned`` as DVC cached it, with ``reports/model_card.md`` (the stage `model_card`: the saved
card with the test metrics' ``model-index``, the verdict with its interval, the Matryoshka and quantization table)
as its README.md, so every file published is a DVC output of this commit, and ``onnx/`` from
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
from embedft.core.artifacts import FINETUNED_MODEL_DIR, MODEL_CARD, export_dir, round_paths
from embedft.export import hub_token, publish_files, refusal, upload
from embedft.training import split_front_matter


def read_report(path: Path) -> dict:
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run `dvc repro` (or `dvc pull`) before publishing")
    return json.loads(path.read_text(encoding="utf-8"))


def card_model_name(card: str) -> str | None:
    """The model name in a card's model-index (None when it has none: no judged test query)."""
    front, _ = split_front_matter(card)
    entries = front.get("model-index") or [{}]
    return entries[0].get("name")


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
    if not MODEL_CARD.is_file():
        raise PipelineError(f"{MODEL_CARD}: not found; run `dvc repro` (or `dvc pull`), whose model_card stage writes "
                            "the card with the test metrics")
    card = MODEL_CARD.read_text(encoding="utf-8")
    if (written_for := card_model_name(card)) not in (None, settings.repo_id):
        raise PipelineError(f"{MODEL_CARD} was written for '{written_for}', not '{settings.repo_id}' (publish.repo_id changed "
                            "since): run `dvc repro model_card` first")
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
