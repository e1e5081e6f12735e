"""`probe run` under torchrun with 2 CPU processes (gloo): the ranks share explain and evaluate, rank 0 writes
the report, and metrics.json is the single-process run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.support.cli import child_env
from tests.support.shapes import run_args


@pytest.mark.slow
def test_two_processes_write_the_single_process_metrics(run_dir, world, checkpoints, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "probe",
        *run_args(checkpoints["moco_v2"], world, out),
    ]
    child = subprocess.Popen(
        command, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = child.communicate(timeout=600)
    finally:
        if child.poll() is None:  # timed out, or the test was stopped: no worker outlives it
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 0, stderr[-3000:]
    single = json.loads((run_dir[0] / "metrics.json").read_text())
    assert "2 processes (torchrun)" in (out / "run.log").read_text()
    assert json.loads((out / "metrics.json").read_text()) == single
