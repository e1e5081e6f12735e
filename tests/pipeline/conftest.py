"""Fixtures for the pipeline tests: a tiny shape world, small checkpoints, one `probe run` shared by several tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.cli import probe_cli
from tests.support.shapes import make_world, run_args, write_checkpoints, write_vit_checkpoint


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """(images, masks): 3 categories x (16 single-object + 2 two-object) images at 64 px."""
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    return write_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def vit_checkpoint(tmp_path_factory) -> Path:
    """A tiny random ViT in DINO's backbone-release layout."""
    return write_vit_checkpoint(tmp_path_factory.mktemp("vit") / "dino_vit.pth")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, world, checkpoints) -> tuple[Path, subprocess.CompletedProcess]:
    """One `probe run` of the MoCo-layout checkpoint on the tiny world (shared, read-only)."""
    out = tmp_path_factory.mktemp("run") / "out"
    done = probe_cli(*run_args(checkpoints["moco_v2"], world, out))
    assert done.returncode == 0, done.stderr
    return out, done
