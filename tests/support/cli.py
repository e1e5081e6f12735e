"""``python -m probe`` in a child process against this checkout: one thread, no progress bars."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this checkout first on PYTHONPATH, no progress bars, one OpenMP thread."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "PROBE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", **extra}


def probe_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m probe ARGS``; returns the finished process with its text output."""
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
