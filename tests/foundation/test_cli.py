"""The console command's surface: help, subcommands and the expected-error contract."""

from __future__ import annotations

import argparse

import pytest

from probe import cli
from probe.errors import ProbeValueError


def test_help_lists_every_subcommand(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in ("demo", "run", "explain", "backbones", "bench"):
        assert f"    {name}" in result.stdout


def _parser_with_failing_command(exc: BaseException) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe")
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("boom")

    def handler(args):
        raise exc

    p.set_defaults(handler=handler)
    return parser


@pytest.mark.parametrize("debug", [False, True])
def test_expected_error_is_one_line_and_exit_2(monkeypatch, capsys, debug):
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with_failing_command(ProbeValueError("k must be >= 2, got 1")))
    code = cli.main((["--debug"] if debug else []) + ["boom"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == "probe boom: error: k must be >= 2, got 1"
    assert ("Traceback" in err) is debug


def test_unexpected_error_keeps_its_traceback(monkeypatch):
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with_failing_command(RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        cli.main(["boom"])


def test_bad_argument_value_exits_2(run_cli):
    result = run_cli("run", "--weights", "x.pth", "--data", "d", "--k", "0", "--out", "o")
    assert result.returncode == 2
    assert "--k" in result.stderr and "must be >= 2" in result.stderr
