"""The console command's surface: help, subcommands and the expected-error contract."""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import types

import pytest

from probe import cli
from probe.errors import ParameterError, ProbeValueError


def test_help_lists_every_subcommand(run_cli):
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in ("demo", "run", "explain", "backbones", "pretrain", "bench", "paper"):
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
    def failing_parser():
        return _parser_with_failing_command(ProbeValueError("k must be >= 2, got 1"))

    monkeypatch.setattr(cli, "build_parser", failing_parser)
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


def _fake_command(name: str, handler) -> types.ModuleType:
    """A subcommand module as a newcomer writes it: ``register`` adds the parser and sets the handler."""
    module = types.ModuleType(f"probe.commands.{name}")

    def register(sub):
        p = sub.add_parser(name, help="a command added by one module and one registry entry")
        p.add_argument("--max-images", type=int)
        p.set_defaults(handler=handler)

    module.register = register
    return module


def test_a_new_subcommand_is_one_module_and_one_registry_entry(monkeypatch, capsys):
    seen = []
    command = _fake_command("sizes", lambda args: seen.append(args) or 3)
    monkeypatch.setitem(sys.modules, "probe.commands.sizes", command)
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "sizes"))
    assert cli.main(["sizes", "--max-images", "7"]) == 3
    assert seen[0].max_images == 7
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "    sizes" in capsys.readouterr().out


def test_a_parameter_error_names_the_commands_flag(monkeypatch, capsys):
    def handler(args):
        raise ParameterError(args.max_images and "max_images" or "eval_per_class", "must be >= 1, got 0")

    monkeypatch.setitem(sys.modules, "probe.commands.sizes", _fake_command("sizes", handler))
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "sizes"))
    assert cli.main(["sizes", "--max-images", "5"]) == 2
    assert capsys.readouterr().err.strip() == "probe sizes: error: --max-images must be >= 1, got 0"
    assert cli.main(["sizes"]) == 2  # a parameter the command has no option for keeps its name
    assert capsys.readouterr().err.strip() == "probe sizes: error: eval_per_class must be >= 1, got 0"


def test_parameter_errors_read_as_the_library_names_them_and_survive_pickling():
    error = ParameterError("pseudo_class", ": the run has k=3 pseudo-classes")
    assert str(error) == "pseudo_class: the run has k=3 pseudo-classes"
    assert error.naming("--pseudo-class") == "--pseudo-class: the run has k=3 pseudo-classes"
    again = pickle.loads(pickle.dumps(error))
    assert (again.parameter, again.problem, str(again)) == (error.parameter, error.problem, str(error))
    assert isinstance(again, ProbeValueError)


def test_building_the_parser_imports_no_torch():
    code = (
        "import sys, probe.cli; probe.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('torch')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
