"""Reading a YAML settings file into a typed model: unknown keys and wrong types are errors that name the file
and the dotted key, with a "did you mean" for typos. Shared by ``params.yaml`` and the machine settings."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from embedft.core import PipelineError


class Section(BaseModel):
    """A settings section: unknown keys are errors, so a misspelt key never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _known_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``location`` (a pydantic error path) in the schema."""
    for part in location:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def describe_validation_error(error: ValidationError, source: Path | str, schema: type[BaseModel]) -> str:
    """One readable line per problem, each naming the dotted key path, with a 'did you mean' for typos.

    Args:
        error: what pydantic found.
        source: the file (or environment variable) the values came from, put first on each line.
        schema: the model that was validated, whose keys the suggestions come from.
    """
    lines = []
    for problem in error.errors():
        location = problem["loc"]
        key = ".".join(str(part) for part in location) or "(top level)"
        if problem["type"] == "extra_forbidden":
            known = _known_keys(schema, location[:-1])
            guess = difflib.get_close_matches(str(location[-1]), known, n=1)
            hint = f"; did you mean '{'.'.join([*map(str, location[:-1]), guess[0]])}'?" if guess else ""
            lines.append(f"{source}: unknown key '{key}'{hint}")
        else:
            given = problem.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"{source}: key '{key}': {problem['msg']}{shown}")
    return "\n".join(lines)


def read_yaml_mapping(path: Path, missing_ok: bool = False) -> dict:
    """The mapping at the top of a YAML file ({} for an empty file, or a missing one when ``missing_ok``).

    Raises:
        PipelineError: the file is missing (unless ``missing_ok``), is not valid YAML (naming the line), or
            holds something other than a mapping.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise PipelineError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PipelineError(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping of keys at the top level")
    return raw


def validate(schema: type[BaseModel], raw: dict, source: Path | str):
    """``schema`` validated from ``raw``; problems become one :class:`PipelineError` naming ``source`` and each key."""
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise PipelineError(describe_validation_error(error, source, schema)) from None
