"""Atomic outputs: nothing half-written is ever left at the final path, and no temporary sibling remains."""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from embedft.core.atomic import atomic_path, write_json_atomic, write_text_atomic
from embedft.core.jsonl import write_jsonl


class Boom(Exception):
    pass


def test_file_success_replaces_content(tmp_path):
    final = tmp_path / "out" / "result.txt"  # parent does not exist yet
    with atomic_path(final) as temporary:
        assert temporary.parent == final.parent
        assert temporary != final
        temporary.write_text("new", encoding="utf-8")
        assert not final.exists()  # nothing at the final path until the block completes
    assert final.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in final.parent.iterdir()) == ["result.txt"]


def test_file_success_overwrites_existing(tmp_path):
    final = tmp_path / "result.txt"
    final.write_text("old", encoding="utf-8")
    with atomic_path(final) as temporary:
        temporary.write_text("new", encoding="utf-8")
        assert final.read_text(encoding="utf-8") == "old"
    assert final.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_file_error_leaves_existing_final_untouched(tmp_path):
    final = tmp_path / "result.txt"
    final.write_text("old", encoding="utf-8")
    with pytest.raises(Boom):
        with atomic_path(final) as temporary:
            temporary.write_text("half", encoding="utf-8")
            raise Boom()
    assert final.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_file_error_leaves_no_final(tmp_path):
    final = tmp_path / "result.txt"
    with pytest.raises(Boom):
        with atomic_path(final) as temporary:
            temporary.write_text("half", encoding="utf-8")
            raise Boom()
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    final = tmp_path / "result.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(final) as temporary:
            temporary.write_text("half", encoding="utf-8")
            raise KeyboardInterrupt()
    assert list(tmp_path.iterdir()) == []


def test_dir_success(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "stale.bin").write_text("stale", encoding="utf-8")
    with atomic_path(final, is_dir=True) as temporary:
        assert temporary.is_dir() and list(temporary.iterdir()) == []
        (temporary / "a.txt").write_text("A", encoding="utf-8")
        (temporary / "sub").mkdir()
        (temporary / "sub" / "b.txt").write_text("B", encoding="utf-8")
    assert sorted(p.name for p in final.iterdir()) == ["a.txt", "sub"]  # the stale file is gone
    assert (final / "sub" / "b.txt").read_text(encoding="utf-8") == "B"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_dir_error_leaves_existing_untouched(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "keep.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(Boom):
        with atomic_path(final, is_dir=True) as temporary:
            (temporary / "partial.txt").write_text("x", encoding="utf-8")
            raise Boom()
    assert [p.name for p in final.iterdir()] == ["keep.txt"]
    assert (final / "keep.txt").read_text(encoding="utf-8") == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_dir_error_leaves_nothing(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(Boom):
        with atomic_path(final, is_dir=True) as temporary:
            (temporary / "partial.txt").write_text("x", encoding="utf-8")
            raise Boom()
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_from_earlier_crash_is_replaced(tmp_path):
    final = tmp_path / "result.txt"
    with atomic_path(final) as temporary:
        temporary.write_text("first", encoding="utf-8")
        temporary_name = temporary.name
    stale = tmp_path / temporary_name
    stale.mkdir()  # a leftover of the same name, even of the wrong kind
    (stale / "junk").write_text("junk", encoding="utf-8")
    with atomic_path(final) as temporary:
        temporary.write_text("second", encoding="utf-8")
    assert final.read_text(encoding="utf-8") == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_write_text_atomic_uses_lf(tmp_path):
    path = tmp_path / "t.txt"
    write_text_atomic(path, "a\nb\n")
    assert path.read_bytes() == b"a\nb\n"


def test_write_json_atomic_sorted_and_deterministic(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_json_atomic(first, {"b": 1, "a": {"y": 2, "x": [1, 2]}})
    write_json_atomic(second, {"a": {"x": [1, 2], "y": 2}, "b": 1})
    text = first.read_text(encoding="utf-8")
    assert first.read_bytes() == second.read_bytes()
    assert text.endswith("}\n")
    assert text.index('"a"') < text.index('"b"')
    assert text.index('"x"') < text.index('"y"')
    assert json.loads(text) == {"a": {"x": [1, 2], "y": 2}, "b": 1}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_write_json_atomic_rejects_nan(tmp_path, bad):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError):
        write_json_atomic(path, {"ndcg@10": bad})
    assert path.read_text(encoding="utf-8") == '{"old": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_write_jsonl_sorted_keys_and_unicode(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"b": "é", "a": 1}, {"z": None}])
    assert path.read_text(encoding="utf-8") == '{"a": 1, "b": "é"}\n{"z": null}\n'


def test_temporaries_of_killed_runs_are_removed_but_a_running_ones_kept(tmp_path):
    final = tmp_path / "result.txt"
    dead = _finished_pid()
    abandoned = tmp_path / f".result.txt.tmp-{dead}"
    abandoned.mkdir()
    (abandoned / "half.bin").write_bytes(b"x")
    running = tmp_path / f".result.txt.tmp-{os.getppid()}"  # our parent is alive
    running.write_text("another run's", encoding="utf-8")
    with atomic_path(final) as temporary:
        temporary.write_text("new", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["result.txt", running.name])


def _finished_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
