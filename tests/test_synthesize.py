"""The `synthesize` stage: sources combined, filters in order, per-source metrics, the review file, and the stage
run for real on a tiny project with every source on (search log, LLM server on 127.0.0.1, tiny local T5,
general-domain mix-in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import write_tiny_dataset

from embedft.config.choices import SOURCE_NAMES
from embedft.config.params import SynthesizeParams
from embedft.core.errors import PipelineError
from embedft.core.rows import Document, Pair
from embedft.pairs.filters import DROP_REASONS, Dropped, held_out_index
from embedft.pairs.llm_queries import LlmReport
from embedft.pairs.review import review_markdown, spread_sample
from embedft.pairs.synthesis import (
    LOCAL_COUNT_KEYS,
    describe_unusable,
    generation_passages,
    labelled_pairs,
    query_pairs,
    split_run_counts,
    synthesize_pairs,
)
from embedft.testing.chat_server import Action, ChatServer

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
LONG = "This positive passage is comfortably longer than the fifty character minimum."
KEY = "sk-stage-test-key-987654321"


def settings(**overrides) -> SynthesizeParams:
    return SynthesizeParams.model_validate(overrides)


def corpus() -> dict[str, Document]:
    return {
        "d1": Document("d1", "json.loads", "Deserialize a JSON document to a Python object, parsing numbers and strings."),
        "d2": Document("d2", "", "Return the square root of x. The argument must be a non-negative number, complex needs cmath."),
        "d3": Document("d3", "Guide", "# Install\nRun pip install guide to get the package with all of its extras.\n# Tiny\nshort"),
    }


def test_labelled_pairs_use_full_text_and_skip_non_relevant():
    docs = corpus()
    pairs = labelled_pairs({"q1": "parse json", "q2": "sqrt"}, {"q2": {"d2": 1}, "q1": {"d1": 2, "d2": 0}}, docs)
    assert pairs == [Pair("parse json", docs["d1"].full_text, "d1", "labelled"), Pair("sqrt", docs["d2"].text, "d2", "labelled")]


def test_generation_passages_sample_and_cut():
    docs = {f"d{i:02d}": Document(f"d{i:02d}", f"T{i}", "x" * (10 * i)) for i in range(20)}
    every = generation_passages(docs, 0, min_chars=50, seed=0)
    assert list(every) == [f"d{i:02d}" for i in range(5, 20)]  # long enough (title and text), in id order
    sample = generation_passages(docs, 4, min_chars=50, seed=0, max_chars=30)
    assert len(sample) == 4 and list(sample) == sorted(sample) and set(sample) <= set(every)
    assert all(len(text) == 30 for text in sample.values())
    assert generation_passages(docs, 4, 50, seed=0, max_chars=30) == sample
    assert generation_passages(docs, 4, 50, seed=1) != generation_passages(docs, 4, 50, seed=0)


def test_query_pairs():
    docs = corpus()
    expected = [Pair("q a", docs["d2"].text, "d2", "llm"), Pair("q b", docs["d2"].text, "d2", "llm")]
    assert query_pairs({"d2": ["q a", "q b"]}, docs, "llm") == expected


def crafted_candidates() -> list[Pair]:
    return [
        Pair("parse a json document", LONG, "d1", "labelled"),
        Pair("square root", LONG, "d2", "labelled"),                  # a test query: leakage
        Pair("sq", LONG, "d2", "search_log"),                          # short anchor
        Pair("json loads", "too short", "d1", "title"),                # short positive
        Pair("PARSE a JSON document?", LONG, "d1", "llm"),             # duplicate of the labelled pair
        Pair("this positive passage is comfortably longer", LONG, "d1", "llm"),   # copies its passage
        Pair("how do I read json", LONG, "d1", "generated"),           # fails the round trip
        Pair("how to decode json text", LONG, "d1", "llm"),            # kept
        Pair("clicked query", LONG, "d3", "search_log"),               # kept
    ]


def fake_round_trip(pairs: list[Pair]):
    """Drops exactly the generated pairs, as a base model that never ranks their passage would."""
    kept = [p for p in pairs if p.source != "generated"]
    return kept, [Dropped(p, "round_trip", "crafted") for p in pairs if p.source == "generated"]


def test_synthesize_pairs_applies_every_filter_and_reports_per_source():
    held_out = held_out_index({"test": {"q9": "Square root"}})
    general = [Pair("general question one", LONG + " One.", "", "general"), Pair("square root", LONG, "", "general")]
    options = settings(general_mix={"fraction": 0.5})
    kept, dropped, report = synthesize_pairs(crafted_candidates(), general, held_out, options, seed=0, round_trip=fake_round_trip)
    assert [(p.source, p.anchor) for p in kept] == [
        ("general", "general question one"), ("labelled", "parse a json document"), ("llm", "how to decode json text"),
        ("search_log", "clicked query"),
    ]
    assert sorted((d.pair.source, d.reason) for d in dropped) == sorted([
        ("labelled", "leakage"), ("general", "leakage"), ("search_log", "short_anchor"), ("title", "short_positive"),
        ("llm", "duplicate"), ("llm", "copied_span"), ("generated", "round_trip"),
    ])
    assert list(report) == list(SOURCE_NAMES)
    assert report["llm"] == {"in": 3, "kept": 1, "dropped": {**dict.fromkeys(DROP_REASONS, 0), "duplicate": 1, "copied_span": 1}}
    assert report["general"]["in"] == 2 and report["general"]["kept"] == 1 and report["general"]["dropped"]["leakage"] == 1
    for counts in report.values():
        assert counts["in"] == counts["kept"] + sum(counts["dropped"].values())
    again = synthesize_pairs(list(reversed(crafted_candidates())), general, held_out, options, seed=0, round_trip=fake_round_trip)
    assert again[0] == kept and again[2] == report


def test_structure_cap_spares_other_sources():
    candidates = [Pair(f"title number {i}", LONG, f"d{i}", "title") for i in range(8)]
    candidates += [Pair(f"{source} query {i}", LONG, f"d{i}", source) for i in range(8) for source in ("labelled", "llm")]
    kept, _, report = synthesize_pairs(candidates, [], {}, settings(max_structure_pairs_per_source=3), seed=0)
    assert report["title"]["kept"] == 3 and report["title"]["dropped"]["capped"] == 5
    assert report["labelled"]["kept"] == 8 and report["llm"]["kept"] == 8
    assert kept == sorted(kept, key=lambda p: (p.source, p.anchor, p.positive_id, p.positive))


def test_spread_sample_represents_small_groups():
    items = [("big", i) for i in range(100)] + [("small", i) for i in range(3)]
    chosen = spread_sample(items, 10, lambda item: item[0], seed=0)
    assert Counter(group for group, _ in chosen) == {"big": 7, "small": 3}
    assert chosen == spread_sample(items, 10, lambda item: item[0], seed=0)
    assert len(spread_sample(items, 500, lambda item: item[0], seed=0)) == 103


def test_review_markdown():
    kept = [Pair(f"query {i} | pipe", "line one\nline two " + "x" * 400, f"d{i}", "llm") for i in range(60)]
    kept.append(Pair("g", LONG, "", "general"))
    dropped = [Dropped(Pair(f"bad {i}", LONG, "d1", "llm"), reason, f"because {reason}")
               for i in range(10) for reason in ("duplicate", "round_trip", "leakage")]
    text = review_markdown(kept, dropped, 50, 20, seed=3)
    assert text == review_markdown(kept, dropped, 50, 20, seed=3)
    kept_rows = text.split("## Kept")[1].split("## Dropped")[0].strip().splitlines()[2:]
    dropped_rows = text.split("## Dropped")[1].strip().splitlines()[2:]
    assert len(kept_rows) == 50 and len(dropped_rows) == 20
    assert "| general | g |" in text and "(general)" in text
    assert "query 1 \\| pipe" in text or "query 2 \\| pipe" in text
    assert all("\n" not in row and "line one line two" in row for row in kept_rows if "| llm |" in row)
    assert Counter(row.split(" | ")[0].strip("| ") for row in dropped_rows) == {"duplicate": 7, "leakage": 7, "round_trip": 6}
    assert "61 pairs kept, 30 dropped" in text


def test_unusable_llm_replies_are_results_and_endpoint_errors_are_traffic():
    llm = {**LlmReport().counts, "passages": 6, "error_replies": 2, "unusable_retried": 1, "empty_replies": 1,
           "truncated_replies": 2, "unusable_replies": 3}
    report, run = split_run_counts({"search_log": {}, "llm": llm, "generated": dict.fromkeys(LOCAL_COUNT_KEYS, 0)})
    assert run["llm"]["error_replies"] == 2 and run["llm"]["unusable_retried"] == 1
    assert {key: report["llm"][key] for key in ("unusable_replies", "empty_replies", "truncated_replies", "unparseable_replies")} \
        == {"unusable_replies": 3, "empty_replies": 1, "truncated_replies": 2, "unparseable_replies": 0}
    assert not {"error_replies", "unusable_retried"} & set(report["llm"])
    warning = describe_unusable(llm)
    assert warning.startswith("3 cached LLM replies gave no queries (1 empty, 2 cut off at synthesize.llm.max_tokens)")
    assert "synthesize.llm.retry_unusable: true" in warning
    assert describe_unusable(LlmReport().counts) == ""


# --- the stage itself, on a tiny project -------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, tiny_model_path: Path, monkeypatch) -> Path:
    """A tiny project after ingest, split and embed_corpus (run in-process with the tiny model)."""
    from stages import embed_corpus, ingest, split

    write_tiny_dataset(tmp_path / "data" / "sample")
    params = yaml.safe_load((TEMPLATE_ROOT / "params.yaml").read_text())
    params["base"].update({"model": str(tiny_model_path), "max_seq_length": 64})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "machine.yaml").write_text("encode_batch_size: 16\nllm_backoff_initial_seconds: 0.01\n")
    monkeypatch.chdir(tmp_path)
    for stage in (ingest, split, embed_corpus):
        stage.main()
    return tmp_path


def update_params(project: Path, synthesize: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for key, value in synthesize.items():
        if isinstance(value, dict):
            params["synthesize"].setdefault(key, {}).update(value)
        else:
            params["synthesize"][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def outputs(project: Path) -> dict[str, bytes]:
    """The stage's outputs by name (pairs.jsonl, synthesize.json, synthesize.md) and its run log (log.json)."""
    files = {"pairs.jsonl": "data/pairs/pairs.jsonl", "synthesize.json": "reports/synthesize.json",
             "synthesize.md": "reviews/synthesize.md", "log.json": "logs/synthesize.json"}
    return {name: (project / path).read_bytes() for name, path in files.items() if (project / path).exists()}


def test_stage_with_the_default_params_uses_the_sources_it_has(project, capsys):
    from stages import synthesize

    synthesize.main()
    metrics = json.loads((project / "reports" / "synthesize.json").read_text())
    rows = [json.loads(line) for line in (project / "data" / "pairs" / "pairs.jsonl").read_text().splitlines()]
    assert {row["source"] for row in rows} == {"labelled", "title"}
    assert all(set(row) == {"anchor", "positive", "positive_id", "source"} for row in rows)
    assert metrics["total_pairs"] == len(rows)
    assert metrics["llm"]["passages"] == 0 and metrics["generated"]["passages"] == 0 and metrics["search_log"]["files"] == 0
    assert json.loads((project / "logs" / "synthesize.json").read_text())["llm"]["requests"] == 0
    assert set(metrics) == {"total_pairs", "sources", "dropped", "leakage_removed", "search_log", "llm", "generated"}
    assert "## Kept" in (project / "reviews" / "synthesize.md").read_text()
    assert not (project / ".cache").exists()  # no LLM configured: nothing opened


@pytest.mark.slow
def test_stage_with_every_source(project, monkeypatch, capsys, caplog):
    from test_local_queries import build_tiny_t5

    from stages import synthesize

    test_queries = json.loads((project / "data" / "split" / "test" / "queries.jsonl").read_text().splitlines()[0])["text"]
    logs = project / "data" / "sample" / "search_logs"
    logs.mkdir()
    (logs / "clicks.csv").write_text(
        "query,doc_id,clicks\n"
        "serialise to json,json.dumps,3\n"
        "serialise  to json,json.dumps,1\n"
        "Serialise to JSON,json.dumps,1\n"
        f"{test_queries.upper()},os.listdir,5\n"          # a test query: the leakage guard removes it
        "removed page,no.such.page,2\n"
    )
    general = [{"anchor": f"general question {i}", "positive": f"A general-domain passage number {i}, long enough to be kept."}
               for i in range(50)]
    (project / "data" / "sample" / "general_pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in general))
    server = ChatServer()
    monkeypatch.setenv("STAGE_TEST_KEY", KEY)
    update_params(project, {
        "llm": {"enabled": True, "base_url": server.url, "model": "test-model", "api_key_env": "STAGE_TEST_KEY", "max_passages": 5,
                "cache": ".cache/llm.sqlite"},
        "local_generator": {"enabled": True, "model": str(build_tiny_t5(project / "t5")), "max_passages": 4, "batch_size": 2,
                            "max_new_tokens": 6, "max_input_tokens": 32},
        "quality": {"round_trip_k": 6},
        "general_mix": {"fraction": 0.2},
    })
    try:
        synthesize.main()
        first = outputs(project)
        printed = capsys.readouterr()
        synthesize.main()
        second = outputs(project)
    finally:
        server.close()
    assert server.requests == 5  # the second run took every reply from the cache
    metrics = json.loads(first["synthesize.json"])
    rows = [json.loads(line) for line in first["pairs.jsonl"].decode().splitlines()]
    sources = Counter(row["source"] for row in rows)
    assert {"labelled", "title", "search_log", "general"} <= set(sources)
    assert sources["llm"] + metrics["sources"]["llm"]["dropped"]["round_trip"] > 0
    assert metrics["sources"]["llm"]["in"] == metrics["llm"]["queries"] == 15
    assert metrics["sources"]["generated"]["in"] == metrics["generated"]["queries"] > 0
    assert json.loads(first["log.json"])["llm"]["requests"] == 5 and "requests" not in metrics["llm"]
    assert metrics["llm"]["prompt_tokens"] == 500 and metrics["llm"]["completion_tokens"] == 100
    assert metrics["search_log"] == {**metrics["search_log"], "rows": 5, "unknown_doc_entries": 1, "duplicate_rows_merged": 2, "pairs": 2}
    assert metrics["sources"]["search_log"]["dropped"]["leakage"] == 1 and metrics["leakage_removed"] >= 1
    assert [r["anchor"] for r in rows if r["source"] == "search_log"] == ["serialise to json"]
    assert sources["general"] == round(0.2 / 0.8 * (len(rows) - sources["general"])) or sources["general"] == 50
    assert all(row["positive_id"] == "" for row in rows if row["source"] == "general")
    for source, counts in metrics["sources"].items():
        assert counts["in"] == counts["kept"] + sum(counts["dropped"].values()), source
        assert counts["kept"] == sources[source], source
    assert "search-log entries" in caplog.text and "'no.such.page'" in caplog.text
    # Same inputs, same pairs, review and report; only the run log's cache counters move.
    assert all(first[name] == second[name] for name in ("pairs.jsonl", "synthesize.md", "synthesize.json"))
    assert json.loads(first["log.json"])["llm"]["cache_hits"] == 0 and json.loads(second["log.json"])["llm"]["cache_hits"] == 5
    for content in [*first.values(), *second.values(), printed.out.encode(), printed.err.encode()]:
        assert KEY.encode() not in content


@pytest.mark.slow
def test_stage_reports_unusable_llm_replies_and_retries_them_on_request(project, monkeypatch, capsys, caplog):
    from stages import synthesize

    # The first two replies are chat completions that give no query: one empty, one cut off at max_tokens.
    server = ChatServer(lambda n, p: Action(content="") if n == 0 else Action(content='{"question": ["cut', finish_reason="length")
                        if n == 1 else Action())
    monkeypatch.setenv("STAGE_TEST_KEY", KEY)
    llm = {"enabled": True, "base_url": server.url, "model": "test-model", "api_key_env": "STAGE_TEST_KEY", "max_passages": 5,
           "cache": ".cache/llm.sqlite"}
    update_params(project, {"llm": llm})
    try:
        synthesize.main()
        first, printed = outputs(project), capsys.readouterr().out
        update_params(project, {"llm": {**llm, "retry_unusable": True}})
        synthesize.main()
        second, printed_again = outputs(project), capsys.readouterr().out
    finally:
        server.close()
    report, log = json.loads(first["synthesize.json"])["llm"], json.loads(first["log.json"])["llm"]
    assert {key: report[key] for key in ("passages", "unusable_replies", "empty_replies", "truncated_replies", "unparseable_replies")} \
        == {"passages": 5, "unusable_replies": 2, "empty_replies": 1, "truncated_replies": 1, "unparseable_replies": 0}
    assert report["queries"] == 9 and log["error_replies"] == 0 and log["unusable_retried"] == 0 and "error_replies" not in report
    assert "LLM replies cached unusable: 2 (synthesize.llm.retry_unusable: true requests them again)" in printed
    assert "2 cached LLM replies gave no queries (1 empty, 1 cut off at synthesize.llm.max_tokens)" in caplog.text
    # retry_unusable: only the two unusable passages are asked again, and their new replies are used.
    report, log = json.loads(second["synthesize.json"])["llm"], json.loads(second["log.json"])["llm"]
    assert server.requests == 7 and log["unusable_retried"] == 2 and log["cache_hits"] == 3 and log["requests"] == 2
    assert report["unusable_replies"] == 0 and report["queries"] == 15
    assert "LLM replies cached unusable: 0;" in printed_again


def run_stage_process(project: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.synthesize"], cwd=project, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(TEMPLATE_ROOT)})


@pytest.mark.slow
def test_stage_missing_api_key_fails_before_any_request(project):
    server = ChatServer()
    update_params(project, {"llm": {"enabled": True, "base_url": server.url, "api_key_env": "UNSET_KEY_VARIABLE"}})
    try:
        env = {k: v for k, v in os.environ.items() if k != "UNSET_KEY_VARIABLE"}
        result = run_stage_process(project, env)
    finally:
        server.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: synthesize.llm is enabled, but the environment variable UNSET_KEY_VARIABLE (named by synthesize.llm.api_key_env) "
        "is not set: export UNSET_KEY_VARIABLE=<your key>, or set api_key_env: '' for a local server that needs no key"
    ]
    assert server.requests == 0
    assert outputs(project) == {} and not (project / "data" / "pairs").exists()


def test_stage_general_mix_without_a_file(project):
    from stages import synthesize

    update_params(project, {"general_mix": {"fraction": 0.1}})
    with pytest.raises(PipelineError, match=r"synthesize.general_mix.fraction is 0.1, but data/sample/general_pairs.jsonl "
                                            r"\(data.general_pairs\) is not a file"):
        synthesize.main()
    assert outputs(project) == {}


def test_stage_bad_search_log_row(project):
    from stages import synthesize

    (project / "data" / "sample" / "search_logs").mkdir()
    (project / "data" / "sample" / "search_logs" / "log.jsonl").write_text(
        '{"query": "q", "doc_id": "json.dumps"}\n{"query": "q", "doc": "x"}\n')
    with pytest.raises(PipelineError, match=r"search_logs/log.jsonl:2: unknown column\(s\) 'doc'"):
        synthesize.main()
    assert outputs(project) == {}
    update_params(project, {"search_log": {"on_bad_row": "skip"}})
    synthesize.main()
    assert json.loads((project / "reports" / "synthesize.json").read_text())["search_log"]["bad_rows_skipped"] == 1


def test_stage_round_trip_refuses_embeddings_of_another_model(project):
    from stages import synthesize

    info = project / "data" / "embeddings" / "base" / "info.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "model": "some/other-model"}))
    update_params(project, {"quality": {"round_trip_sources": ["title"]}})
    with pytest.raises(PipelineError, match="holds embeddings of 'some/other-model', not base.model"):
        synthesize.main()
