"""The ``probe`` console command: argument parsing, dispatch and error reporting.

Each subcommand lives in ``probe.commands.<name>``: ``register(subparsers)`` adds its parser and sets
its handler; a library error naming a parameter is shown with that parameter's flag.
Expected failures print one line and exit 2: bad arguments, :class:`probe.errors.ProbeError`,
and OSErrors the environment causes (full disk, read-only folder); ``--debug`` shows their
traceback too. Ctrl-C exits 130 and SIGTERM 143, after the command has unwound (finished
work flushed, temporary files removed).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
import warnings
from collections.abc import Sequence

from .errors import ParameterError, ProbeError, Terminated, environment_error, sigterm_unwinds

#: The registry of subcommands: ``probe.commands.<name>``, in the order ``probe --help`` shows them.
COMMANDS = ("demo", "run", "explain", "backbones", "pretrain", "bench", "paper")
#: PIL's warning for an image past its pixel limit: the image is skipped and listed with that reason
#: (run.log, metrics.json, report), so on the command line the warning would only repeat it as noise.
_BOMB_WARNING = r"Image size \(\d+ pixels\) exceeds limit"


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line, like every other expected error (the usage is in ``--help``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="probe",
        description="Did this self-supervised backbone learn semantic concepts, and where does it look?",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for expected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"probe.commands.{name}").register(sub)
    return parser


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"probe {args.command}: {message}", file=sys.stderr)
    return code


def _message(args: argparse.Namespace, exc: ProbeError) -> str:
    """The error's text; a parameter the command has an option for is named by that option (``--max-images``)."""
    if isinstance(exc, ParameterError) and exc.parameter in vars(args):
        return exc.naming("--" + exc.parameter.replace("_", "-"))
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=_BOMB_WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with sigterm_unwinds():
            return int(args.handler(args) or 0)
    except ProbeError as exc:
        return _fail(args, f"error: {_message(args, exc)}", 2)
    except OSError as exc:
        error = environment_error(exc)
        if error is None:
            raise
        return _fail(args, f"error: {error}", 2)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", 130)
    except Terminated:
        return _fail(args, "terminated (SIGTERM)", 143)


if __name__ == "__main__":
    sys.exit(main())
