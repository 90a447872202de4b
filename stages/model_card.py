"""Stage `model_card`: the card the fine-tuned model is published with, written to ``reports/model_card.md``.

``models/finetuned/README.md`` is written by `train`, which cannot know the test metrics. This stage adds them:
the ``model-index`` front matter the Hub reads, the test metrics per system, the verdict with its interval and the
Matryoshka and quantization table, from ``reports/evaluate.json`` and ``reports/truncate.json`` of the same run.
`python -m stages.publish` uploads ``models/finetuned`` with this file as its README.md, so what is published is
what DVC cached, file for file. The file is git-tracked: a pull request shows the card its merge would publish.
"""

from __future__ import annotations

import json
from pathlib import Path

from embedft.config import load_params
from embedft.core import PipelineError, run_stage, write_text_atomic
from embedft.core.artifacts import FINETUNED_MODEL_DIR, MODEL_CARD, TRUNCATE_REPORT, round_paths
from embedft.training import card_with_test_metrics

UNPUBLISHED_NAME = "finetuned"
"""The model-index's name while `publish.repo_id` is empty (nothing is published then)."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run `dvc repro`, which writes it before this stage") from None


def main() -> None:
    params = load_params()
    saved_card = FINETUNED_MODEL_DIR / "README.md"
    if not saved_card.is_file():
        raise PipelineError(f"{saved_card}: not found; the train stage writes it with the model")
    evaluation = read_json(round_paths(1).evaluate_report)
    card = card_with_test_metrics(
        saved_card.read_text(encoding="utf-8"), evaluation, read_json(TRUNCATE_REPORT),
        model_name=params.publish.repo_id or UNPUBLISHED_NAME, dataset=Path(params.data.dir).name,
        headline=params.evaluate.headline, metadata={"license": params.publish.license, "datasets": params.publish.datasets})
    write_text_atomic(MODEL_CARD, card)
    print(f"model_card: {MODEL_CARD} (verdict: {evaluation.get('verdict', 'not measured')}); "
          "`python -m stages.publish` uploads it as the model's README.md")


if __name__ == "__main__":
    run_stage(main)
