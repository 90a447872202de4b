"""Machine settings: defaults, the settings file, environment variables, and the errors for bad ones. One source
of defaults: the typed models, which params.yaml and machine.example.yaml repeat exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embedft.config import MachineSettings, Params, load_machine, load_params
from embedft.config.validation import validate
from embedft.core import PipelineError

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


def flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def test_params_yaml_says_what_the_typed_defaults_say() -> None:
    shipped, defaults = flatten(load_params(TEMPLATE_ROOT / "params.yaml").model_dump()), flatten(Params().model_dump())
    assert {key: (shipped[key], defaults[key]) for key in defaults if shipped[key] != defaults[key]} == {}
    written = flatten(yaml.safe_load((TEMPLATE_ROOT / "params.yaml").read_text(encoding="utf-8")))
    # Every key but the two long prompt texts is written out, so a user sees what they can change.
    assert set(defaults) - set(written) == {"synthesize.llm.system_prompt", "synthesize.llm.prompt_template"}


def test_machine_example_lists_every_setting_at_its_default() -> None:
    example = yaml.safe_load((TEMPLATE_ROOT / "machine.example.yaml").read_text(encoding="utf-8"))
    assert list(example) == list(MachineSettings.model_fields)
    assert validate(MachineSettings, example, "machine.example.yaml") == MachineSettings()


def test_no_setting_is_both_a_param_and_a_machine_setting() -> None:
    params = {key.rsplit(".", 1)[-1] for key in flatten(Params().model_dump())}
    assert {"device", "on_missing_gpu", "encode_batch_size", "search_chunk_size", "resume"} & params == set()


def test_defaults_without_a_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_machine({}) == MachineSettings()


def test_file_then_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("machine.yaml").write_text("device: cuda:1\nencode_batch_size: 256\nresume: true\n")
    settings = load_machine({"EMBEDFT_ENCODE_BATCH_SIZE": "128", "EMBEDFT_RESUME": "false", "OTHER": "x"})
    assert (settings.device, settings.encode_batch_size, settings.resume) == ("cuda:1", 128, False)
    elsewhere = tmp_path / "gpu.yaml"
    elsewhere.write_text("device: cpu\n")
    assert load_machine({"EMBEDFT_MACHINE_FILE": str(elsewhere)}).device == "cpu"


def test_unknown_key_in_the_file_names_it_and_suggests(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("machine.yaml").write_text("encode_batchsize: 32\n")
    with pytest.raises(PipelineError, match=r"machine.yaml: unknown key 'encode_batchsize'; did you mean 'encode_batch_size'\?"):
        load_machine({})


def test_wrong_value_names_the_file_or_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("machine.yaml").write_text("on_missing_gpu: fallback\n")
    with pytest.raises(PipelineError, match=r"machine.yaml: key 'on_missing_gpu'"):
        load_machine({})
    Path("machine.yaml").write_text("device: cpu\n")
    with pytest.raises(PipelineError, match=r"environment variable EMBEDFT_ENCODE_BATCH_SIZE: key 'encode_batch_size'.*'many'"):
        load_machine({"EMBEDFT_ENCODE_BATCH_SIZE": "many"})


def test_unknown_variable_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(PipelineError, match=r"EMBEDFT_DEVISE: not a machine setting \(known: .*EMBEDFT_DEVICE"):
        load_machine({"EMBEDFT_DEVISE": "cuda"})


def test_missing_named_file_and_bad_yaml(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=r"EMBEDFT_MACHINE_FILE=nowhere.yaml: no such file"):
        load_machine({"EMBEDFT_MACHINE_FILE": "nowhere.yaml"})
    Path("machine.yaml").write_text("device: [cuda\n")
    with pytest.raises(PipelineError, match=r"machine.yaml:\d+: not valid YAML"):
        load_machine({})
