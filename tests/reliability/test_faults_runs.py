"""Runs meeting the world: awkward files, Ctrl-C / SIGTERM and resume, two runs on one folder, a full
disk, a read-only folder. Nothing crashes halfway, nothing finished is recomputed, nothing half-done
looks like a result, and the same seed gives the same metrics.json bytes."""

from __future__ import annotations

import contextlib
import html
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from probe.cli import main
from probe.report import validate_metrics
from tests.support.cli import child_env
from tests.support.faults import BROKEN, HOSTILE_STEM, counting_run, run_args, total_rows
from unsupervised.cache import DONE, PENDING

RESULTS = ("report.html", "metrics.json", "timings.json", "figures")


def _no_result(out: Path) -> None:
    assert not any((out / name).exists() for name in RESULTS), sorted(p.name for p in out.iterdir())
    assert not list(out.glob(".report-staging-*"))


def test_awkward_files_are_skipped_with_reasons_and_escaped_in_the_report(clean_run):
    out, done, rows = clean_run
    metrics = json.loads((out / "metrics.json").read_text())
    validate_metrics(metrics)
    images = metrics["dataset"]["images"]
    assert images == 18 and rows == 2 * images  # 1x1, 16-bit, palette, CMYK, RGBA, EXIF-rotated, hostile name kept
    skipped = {s["path"]: s["reason"] for s in metrics["dataset"]["skipped"]}
    assert set(skipped) == set(BROKEN)
    for path, reason in BROKEN.items():
        assert skipped[path].startswith(reason)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and html.escape(f"circle/{HOSTILE_STEM}.jpg", quote=True) in page
    log = (out / "run.log").read_text(encoding="utf-8")
    assert "square_001.png is 16x16, image is 32x32: mask resized" in log
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr


@contextlib.contextmanager
def _child(child: subprocess.Popen) -> Iterator[subprocess.Popen]:
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def _wait_for_rows(child: subprocess.Popen, at_least: int) -> int:
    """Read ``rows N`` lines until N >= ``at_least`` (the child is then inside its first extraction)."""
    for line in child.stdout:
        if line.startswith("rows ") and int(line.split()[1]) >= at_least:
            return int(line.split()[1])
    raise AssertionError(f"the run ended before computing {at_least} rows: {child.stderr.read()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, status, message",
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
    ids=["SIGINT", "SIGTERM"],
)
def test_interrupted_run_resumes_without_recomputing(
    signum, status, message, clean_run, micro_world, weights, tmp_path, capsys
):
    reference, _, _ = clean_run
    out = tmp_path / "out"
    args = run_args(weights, micro_world, out)
    with _child(counting_run(*args, pause_at_rows=4)) as first:  # waits there until signalled
        paused = _wait_for_rows(first, 4)
        assert main(args) == 2  # a second run on the same folder, meanwhile: refused, the first goes on
        assert capsys.readouterr().err == f"probe run: error: output directory {out} is in use by another probe run\n"
        first.send_signal(signum)
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == status and stderr == f"probe run: {message}\n"
    _no_result(out)
    assert "run stopped: " in (out / "run.log").read_text()
    (partial,) = (out / "cache").glob("*.partial")
    state = np.load(partial / "status.npy")
    finished, computed = int((state != PENDING).sum()), int((state == DONE).sum())
    assert computed == paused < len(state) - 1  # the finished batches were flushed on the way out, the rest is pending

    with _child(counting_run(*args)) as again:
        stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    images = json.loads((out / "metrics.json").read_text())["dataset"]["images"]
    assert f"{finished} of {len(state)} images already done" in (out / "run.log").read_text()
    assert total_rows(stdout) == 2 * images - computed  # the control's finished rows were not recomputed
    assert (out / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()  # same seed, same bytes


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the file-size-limit variant covers a full disk without it")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the file-size-limit variant still runs")


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    _mount_tmpfs(where, options)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def _disk_full_failure(stderr: str, out: Path, earlier: dict[str, bytes] | None = None) -> None:
    """One line naming the full disk; no new result in ``out`` (``earlier``: the report files already there)."""
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("probe run: error: cannot write ") and "(the disk or quota is full" in stderr, stderr
    if earlier is None:
        _no_result(out)
    else:
        assert {name: (out / name).read_bytes() for name in earlier} == earlier
        assert not (out / "timings.json").exists() and not list(out.glob(".report-staging-*"))


def test_disk_full_on_a_tiny_tmpfs(clean_run, micro_world, weights, tmp_path, capsys):
    reference, _, _ = clean_run
    with _tmpfs(tmp_path / "full", "size=64k") as full:
        out = full / "out"
        assert main(run_args(weights, micro_world, out, "--cache-dir", str(reference / "cache"))) == 2
        stderr = capsys.readouterr().err
        _disk_full_failure(stderr, out)
        assert "No space left on device" in stderr


def test_disk_full_as_a_file_size_limit_keeps_an_earlier_report_whole(clean_run, micro_world, weights, tmp_path):
    """RLIMIT_FSIZE makes every write past 16 KiB fail with EFBIG, as a full disk would (no root needed); the
    rerun goes into a folder holding an earlier run's report, which must stay whole."""
    reference, _, _ = clean_run
    out = tmp_path / "out"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("cache", ".probe.lock"))
    earlier = {name: (out / name).read_bytes() for name in ("report.html", "metrics.json")}
    limit = 16 * 1024
    done = subprocess.run(
        [sys.executable, "-m", "probe", *run_args(weights, micro_world, out, "--cache-dir", str(reference / "cache"))],
        env=child_env(PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    assert done.returncode == 2 and "File too large" in done.stderr
    _disk_full_failure(done.stderr, out, earlier)


def test_output_folder_that_cannot_be_written(weights, micro_world, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [(blocker / "out", "Not a directory")]
    with contextlib.ExitStack() as stack:
        if os.geteuid() == 0:  # root ignores permission bits: a read-only mount is the real thing
            readonly = tmp_path / "ro"
            with contextlib.suppress(pytest.skip.Exception):
                stack.enter_context(_tmpfs(readonly, "ro,size=64k"))
                cases.append((readonly / "out", "Read-only file system"))
        else:
            locked = tmp_path / "locked"
            locked.mkdir(mode=0o500)
            cases.append((locked / "out", "Permission denied"))
        for out, reason in cases:
            assert main(run_args(weights, micro_world, out)) == 2
            stderr = capsys.readouterr().err
            assert stderr == f"probe run: error: output directory {out} is not usable: {reason}\n"
