"""Extraction under torchrun with 2 CPU processes (gloo) equals a single-process run, byte for byte."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.unsup_helpers import StandInBackbone, worker_command
from unsupervised import ImageFolderData, extract_features


def _run_group(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``command`` in its own process group; on timeout kill the whole group (torchrun and its
    workers), and also when the test itself is stopped, so that no worker outlives it. Returns (status, stderr)."""
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        _, stderr = child.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s; its process group was killed:\n{stderr[-3000:]}")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return child.returncode, stderr


def _two_ranks_equal_single_process(mode: str, folder: Path, tmp_path: Path) -> Path:
    """Run ``extract_worker.py MODE`` under torchrun with 2 processes; every rank's features, with and without
    a cache, must be the single-process bytes, and the 8 batches must be split 4 + 4. Returns the output prefix."""
    broken = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(broken, "JPEG")
    (folder / "banana" / "cut.jpg").write_bytes(broken.getvalue()[:1500])  # fails at decode time
    single = extract_features(StandInBackbone(), ImageFolderData(folder), batch_size=2)

    out = tmp_path / "out"
    command, env = worker_command(mode, str(folder), str(tmp_path / "cache"), str(out), torchrun_processes=2)
    returncode, stderr = _run_group(command, env, timeout=300)
    assert returncode == 0, stderr[-3000:]

    reports = [json.loads(Path(f"{out}.rank{rank}.json").read_text()) for rank in (0, 1)]
    for name in ("cached", "temporary"):
        for rank in (0, 1):
            got = np.load(f"{out}.{name}.rank{rank}.npy")
            assert got.tobytes() == np.asarray(single).tobytes(), (name, rank)
            assert reports[rank][name]["paths"] == single.paths
            assert [tuple(s) for s in reports[rank][name]["skipped"]] == single.skipped
        calls = [reports[rank][name]["forward_calls"] for rank in (0, 1)]
        assert calls == [4, 4]  # 16 files in a grid of 8 batches of 2, split between the ranks
    assert reports[0]["cached"]["key"] == reports[1]["cached"]["key"] is not None
    assert (tmp_path / "cache" / reports[0]["cached"]["key"] / "features.npy").is_file()
    return out


@pytest.mark.slow
def test_torchrun_two_processes_equal_single_process(labelled_folder, tmp_path):
    _two_ranks_equal_single_process("distributed", labelled_folder, tmp_path)


@pytest.mark.slow
def test_a_rank_that_starts_after_another_has_flushed_still_gets_its_share(labelled_folder, tmp_path):
    """Rank 1 opens the work area only once rank 0 has flushed finished rows into it. When each rank read
    the pending batches from that shared status by itself, rank 1 split a shorter list than rank 0 had,
    some batches belonged to no rank, and their rows were published as zeros."""
    out = _two_ranks_equal_single_process("late_rank", labelled_folder, tmp_path)
    assert json.loads(Path(f"{out}.late_rank.json").read_text()) == [True, True]  # cached and temporary: it waited
