"""Suite-wide fixtures: run subprocesses against this checkout, and keep torch small on 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import probe_cli

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def run_cli():
    """Run ``python -m probe ARGS`` in a subprocess against this checkout (``tests.support.cli.probe_cli``)."""
    return probe_cli


@pytest.fixture(autouse=True)
def quiet_single_thread(monkeypatch):
    """Every test: no progress bars and one torch thread (two spinning threads are ~10x slower on a shared
    2-core machine, and one thread matches torchrun workers bytewise); OMP_NUM_THREADS reaches child processes."""
    import torch

    monkeypatch.setenv("PROBE_NO_PROGRESS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data_dir() -> Path:
    """The suite's committed test data (tests/data)."""
    return DATA
