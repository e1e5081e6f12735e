"""Fixtures for the pipeline tests: a tiny shape world, small checkpoints, one `probe run` shared by several tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tiny_world import make_world, write_checkpoints

REPO = Path(__file__).resolve().parents[2]
#: Cheap settings for every test run: one baseline, 8 evaluated images per pseudo-class.
FAST = ("--baselines", "gradcam", "--eval-images", "24", "--device", "cpu", "--batch-size", "32")


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """(images, masks): 3 categories x (16 single-object + 2 two-object) images at 64 px."""
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    return write_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def probe_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m probe ARGS`` against this checkout, one thread, no progress bars."""
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO), "PROBE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "probe", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def run_args(weights: Path, world: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    images, masks = world
    return ["run", "--weights", str(weights), "--data", str(images), "--masks", str(masks), "--k", "3",
            "--out", str(out), *FAST, *extra]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, world, checkpoints) -> tuple[Path, subprocess.CompletedProcess]:
    """One `probe run` of the MoCo-layout checkpoint on the tiny world (shared, read-only)."""
    out = tmp_path_factory.mktemp("run") / "out"
    done = probe_cli(*run_args(checkpoints["moco_v2"], world, out))
    assert done.returncode == 0, done.stderr
    return out, done
