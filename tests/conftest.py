"""Suite-wide fixtures: run subprocesses against this checkout, and keep torch small on 2 cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("PROBE_NO_PROGRESS", "1")
    return env


@pytest.fixture
def run_cli():
    """Run ``python -m probe ARGS`` in a subprocess against this checkout; returns CompletedProcess."""

    def run(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "probe", *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


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
