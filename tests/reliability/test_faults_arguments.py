"""Bad arguments: exit 2 with one line on stderr naming the argument (and the valid names), no traceback,
nothing written; ``--debug`` shows the traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from probe.cli import main
from tests.support.cli import REPO, child_env
from tests.support.faults import run_args


def _probe(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in process: (exit status, stdout, stderr); argparse errors exit through SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--k", "1"], "argument --k: must be >= 2, got 1"),
        (["--k", "-3"], "argument --k: must be >= 2, got -3"),
        (["--batch-size", "-8"], "argument --batch-size: must be >= 1, got -8"),
        (["--batch-size", "many"], "argument --batch-size: expected an integer, got 'many'"),
        (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["--arch", "resnet9"], "unknown backbone architecture 'resnet9'; known: "),
        (["--eval-precision", "-0.1"], "--eval-precision must be a number in [0, 1) (0: every image), got -0.1"),
        (["--eval-precision", "many"], "argument --eval-precision: invalid float value: 'many'"),
        (["--threads", "0"], "argument --threads: must be >= 1, got 0"),
    ],
    ids=["k=1", "k<0", "batch<0", "batch-text", "seed<0", "arch", "precision<0", "precision-text", "threads=0"],
)
def test_bad_run_arguments_are_one_line_exit_2(extra, message, micro_world, weights, tmp_path, capsys):
    """(Unknown method, baseline, format and device names: tests/pipeline/test_run_api.py.)"""
    out = tmp_path / "out"
    code, stdout, stderr = _probe(run_args(weights, micro_world, out) + extra, capsys)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and message in stderr and "Traceback" not in stderr, stderr
    assert not any((out / name).exists() for name in ("report.html", "metrics.json", "timings.json", "figures"))


def test_unknown_pretraining_method_lists_the_known_ones(tmp_path, capsys):
    code, _, stderr = _probe(["pretrain", "--method", "dino", "--out", str(tmp_path / "x.pth")], capsys)
    assert code == 2 and stderr.count("\n") == 1
    assert "unknown pretraining recipe 'dino'; known: " in stderr and "simclr" in stderr


def test_debug_shows_the_traceback_of_an_expected_error(micro_world, weights, tmp_path):
    args = run_args(weights, micro_world, tmp_path / "out") + ["--method", "gradcan"]
    plain, debug = (
        subprocess.run(
            [sys.executable, "-m", "probe", *flags, *args],
            env=child_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for flags in ([], ["--debug"])
    )
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and plain.stderr.count("\n") == 1
    assert debug.stderr.startswith("Traceback") and "ParameterError" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip()
