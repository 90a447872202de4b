"""Publishing the fine-tuned model to a Hugging Face Hub repository: which files go, whether it may go, the token.

What is published is the folder DVC cached (``models/finetuned``, every file as it is) with its card replaced by
the card with the test metrics (``README.md``, made by the caller from the cached card and the reports of the
same commit), and, when the model was exported, the ONNX graph under ``onnx/`` (the path sentence-transformers'
ONNX backend reads). One commit carries them all, through ``huggingface_hub``'s ``create_repo`` and
``create_commit``; ``HF_ENDPOINT`` points the client at another Hub.

The token comes from the environment variable ``HF_TOKEN`` only: not from params, not from ``hf auth login``'s
stored token (so a run never publishes under an account nobody named), and it is passed to the client, never
printed or written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from embedft.config import PublishParams
from embedft.core import PipelineError

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "HF_TOKEN"
CARD_FILE = "README.md"
ONNX_FOLDER = "onnx"
"""Where the ONNX graph goes in the repository: sentence-transformers' backend="onnx" loads onnx/model.onnx."""


def hub_token() -> str:
    """The access token from ``HF_TOKEN``.

    Raises:
        PipelineError: it is not set (or empty).
    """
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise PipelineError(f"publishing needs a Hugging Face access token with write access in the environment variable "
                            f"{TOKEN_VARIABLE} (export {TOKEN_VARIABLE}=hf_...; it is read from nowhere else)")
    return token


def refusal(evaluation: dict, settings: PublishParams) -> str | None:
    """Why the model must not be published, or None.

    Args:
        evaluation: ``reports/evaluate.json`` (its ``verdict`` and ``suspected_leak``).
        settings: the `publish` params (``allow_regression``, ``allow_suspected_leak``).
    """
    verdict = evaluation.get("verdict")
    if verdict == "regression" and not settings.allow_regression:
        c = evaluation.get("comparisons", {}).get("finetuned_vs_base", {})
        interval = f" (fine-tuned minus base {c['difference']:+.4f}, 95% CI {c['ci_low']:+.4f} .. {c['ci_high']:+.4f})" if c else ""
        return (f"the verdict is regression{interval}: the fine-tuned model is worse than the base model on the test "
                "split. Set publish.allow_regression: true to publish it anyway")
    if evaluation.get("suspected_leak") and not settings.allow_suspected_leak:
        return ("evaluate suspects a train/test leak (the gain over base is too large to trust; see leakage in "
                "reports/evaluate.json). Set publish.allow_suspected_leak: true to publish it anyway")
    return None


def publish_files(model_dir: Path, card: str, onnx_dir: Path | None = None) -> dict[str, Path | bytes]:
    """The repository's files, path in the repository -> local file (or the card's bytes), sorted.

    Args:
        model_dir: the cached model folder; every file but its card goes as it is.
        card: the card to publish as README.md.
        onnx_dir: the export's ``onnx/`` folder, whose files go under ``onnx/``; None for none.

    Raises:
        PipelineError: the model folder (or the ONNX folder) is missing.
    """
    if not (model_dir / "config_sentence_transformers.json").is_file():
        raise PipelineError(f"{model_dir}: no fine-tuned model here; run `dvc repro` (or `dvc pull`) first")
    files: dict[str, Path | bytes] = {path.relative_to(model_dir).as_posix(): path for path in sorted(model_dir.rglob("*"))
                                      if path.is_file() and path.relative_to(model_dir).as_posix() != CARD_FILE}
    if onnx_dir is not None:
        if not onnx_dir.is_dir():
            raise PipelineError(f"{onnx_dir}: export.formats has onnx but there is no export; run `dvc repro` first "
                                "(or set publish.onnx: false)")
        files.update({f"{ONNX_FOLDER}/{path.relative_to(onnx_dir).as_posix()}": path
                      for path in sorted(onnx_dir.rglob("*")) if path.is_file()})
    files[CARD_FILE] = card.encode("utf-8")
    return dict(sorted(files.items()))


def upload(files: dict[str, Path | bytes], settings: PublishParams, token: str, message: str) -> str:
    """Create the repository if needed and commit ``files`` to it in one commit; return the commit's URL.

    Raises:
        PipelineError: the Hub refused the token or the request, or cannot be reached (the message names the
            endpoint and the status, never the token).
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(settings.repo_id, private=settings.private, exist_ok=True, repo_type="model")
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=source if isinstance(source, bytes) else str(source))
                      for path, source in files.items()]
        commit = api.create_commit(settings.repo_id, operations, commit_message=message, revision=settings.revision,
                                   repo_type="model")
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        hint = (f": the Hub refused the token in {TOKEN_VARIABLE} (it needs write access to {settings.repo_id})"
                if status in (401, 403) else "")
        raise PipelineError(f"publishing to {api.endpoint}/{settings.repo_id} failed (HTTP {status}){hint}: "
                            f"{str(error).splitlines()[0]}") from None
    except OSError as error:  # no connection, DNS, TLS
        raise PipelineError(f"publishing to {api.endpoint}/{settings.repo_id} failed: cannot reach the Hub ({error})") from None
    logger.info("committed %d files to %s: %s", len(files), settings.repo_id, commit.commit_url)
    return commit.commit_url
