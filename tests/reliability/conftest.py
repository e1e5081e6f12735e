"""Fixtures of the fault battery: a micro world with awkward files, one clean run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.faults import counting_run, make_micro_world, moco_checkpoint, run_args, total_rows


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory) -> tuple[Path, Path]:
    return make_micro_world(tmp_path_factory.mktemp("micro"))


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    return moco_checkpoint(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory, micro_world, weights) -> tuple[Path, subprocess.CompletedProcess, int]:
    """One uninterrupted `probe run` on the micro world: (out, finished process, feature rows it computed)."""
    out = tmp_path_factory.mktemp("clean") / "out"
    child = counting_run(*run_args(weights, micro_world, out))
    stdout, stderr = child.communicate(timeout=600)
    assert child.returncode == 0, stderr
    return out, subprocess.CompletedProcess(child.args, 0, stdout, stderr), total_rows(stdout)
