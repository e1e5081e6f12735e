"""Atomic writes and output-directory locking."""

from __future__ import annotations

import json
import math

import pytest

from probe.errors import OutputError
from probe.fileio import atomic_path, atomic_write_json, atomic_write_text, locked_output_dir


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failed_write_leaves_old_content_and_no_temp_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ZeroDivisionError("interrupted mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_json_refuses_nan_and_writes_nothing(tmp_path):
    target = tmp_path / "m.json"
    with pytest.raises(ValueError):
        atomic_write_json(target, {"x": math.nan})
    assert not target.exists()
    atomic_write_json(target, {"x": 1.5})
    assert json.loads(target.read_text()) == {"x": 1.5}


def test_output_dir_lock_is_exclusive(tmp_path):
    with locked_output_dir(tmp_path / "out"):
        with pytest.raises(OutputError, match="in use by another probe run"):
            with locked_output_dir(tmp_path / "out"):
                pass
    with locked_output_dir(tmp_path / "out"):  # released after the block
        pass


def test_unwritable_output_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match="not usable"):
        with locked_output_dir(blocker / "out"):
            pass
