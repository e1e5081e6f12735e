"""Fixtures for the unsupervised tests: a stand-in backbone and small seeded image folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unsup_helpers import StandInBackbone, make_folder


@pytest.fixture(autouse=True)
def _quiet_single_thread(monkeypatch):
    """No progress bars, and one torch thread: on a shared 2-core machine two spinning OpenMP
    threads run small convolutions ~10x slower, and one thread makes results comparable
    bytewise with torchrun workers (which default to one thread each)."""
    monkeypatch.setenv("PROBE_NO_PROGRESS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def backbone() -> StandInBackbone:
    return StandInBackbone(seed=0)


@pytest.fixture
def labelled_folder(tmp_path: Path) -> Path:
    """3 classes x 5 PNG images of assorted sizes."""
    return make_folder(tmp_path / "images", {"apple": 5, "banana": 5, "cherry": 5})

