"""Saving the fine-tuned model so that its files depend on the training alone, never on the machine's environment.

sentence-transformers and transformers write a few facts about how the model was loaded and on which install
into the folder, and DVC hashes every byte of it: the same training would give another hash (and rerun every
later stage) on another machine or shell. :func:`save_model` writes the model, then normalises them:

- ``tokenizer_config.json`` records the loading call's ``local_files_only``, which is true whenever
  ``HF_HUB_OFFLINE`` is set, and ``is_local``, whether the model came from a folder or the Hub cache. Both are
  removed: loading sets them again from its own call, so the saved folder loads as before.
- ``config_sentence_transformers.json`` records the versions of sentence-transformers, transformers and torch;
  torch's carries a local build label (``2.5.1+cpu``, ``+cu124``), which names the wheel installed for this
  machine's accelerator rather than anything that computes. The label is removed from every version; the
  release numbers stay (a new release may change the numbers, and sentence-transformers reads its own to warn
  when loading with an older one).

``config.json`` needs nothing: its ``use_cache`` comes from the trainer's arguments, its ``dtype`` from the
weights and ``transformers_version`` from the install, as above, without a local label.

sentence-transformers' own generated card is not written (``create_model_card=False``): it lists the training
time, the Python and library versions and the trainer's device flags. The card written instead
(:mod:`embedft.training.model_card`) takes its Hub front matter from the same card data, without those.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import yaml
from sentence_transformers import SentenceTransformer

from embedft.encoding import resolve_model_path
from embedft.training.model_card import CardFacts, hub_metadata, is_hub_id, split_front_matter, write_model_card

logger = logging.getLogger(__name__)

LOAD_TIME_KEYS = ("local_files_only", "is_local")
"""Keys of ``tokenizer_config.json`` that record how the tokenizer was loaded, not what it is."""


def save_model(model: SentenceTransformer, folder: Path, facts: CardFacts) -> None:
    """Save ``model`` (safetensors weights) with the model card into ``folder``, its files normalised as the module
    says."""
    model.save(str(folder), safe_serialization=True, create_model_card=False)
    normalise_saved_files(Path(folder))
    hub = hub_metadata(model.model_card_data, facts.base_model, base_card_metadata(facts.base_model))
    write_model_card(folder, dataclasses.replace(facts, hub=hub))


def base_card_metadata(name: str) -> dict:
    """The front matter of the base model's own card (its licence and languages), read from its folder or from the
    local Hugging Face cache, never from the network; {} when there is none or it cannot be read."""
    folder = Path(resolve_model_path(name))
    path: Path | None = folder / "README.md" if folder.is_dir() else None
    if path is None and is_hub_id(name):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "README.md")
        path = Path(cached) if isinstance(cached, str) else None
    if path is None or not path.is_file():
        return {}
    try:
        front, _ = split_front_matter(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        logger.warning("%s: the base model's card has unreadable front matter (%s); its licence is not copied", path, error)
        return {}
    return front if isinstance(front, dict) else {}


def normalise_saved_files(folder: Path) -> None:
    """Remove the environment's traces from a saved sentence-transformers folder (every module's subfolder too)."""
    for path in sorted(folder.rglob("tokenizer_config.json")):
        config = json.loads(path.read_text(encoding="utf-8"))
        if any(key in config for key in LOAD_TIME_KEYS):
            for key in LOAD_TIME_KEYS:
                config.pop(key, None)
            # transformers' own layout of the file
            path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    path = folder / "config_sentence_transformers.json"
    if path.is_file():
        config = json.loads(path.read_text(encoding="utf-8"))
        versions = config.get("__version__")
        if isinstance(versions, dict):
            config["__version__"] = {name: release(value) for name, value in versions.items()}
            # sentence-transformers' own layout of the file
            path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def release(version: object) -> object:
    """A version without its local label: ``2.5.1+cu124`` -> ``2.5.1``; anything else unchanged."""
    return version.split("+", 1)[0] if isinstance(version, str) else version
