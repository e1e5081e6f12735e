"""The ``probe`` console command: argument parsing, dispatch and error reporting.

Each subcommand lives in ``probe.commands.<name>`` and exposes ``register(subparsers)``.
Expected failures (:class:`probe.errors.ProbeError`) print one line and exit 2;
``--debug`` shows their traceback too.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Sequence

from .errors import ProbeError

# Order is the order shown by ``probe --help``.
COMMANDS = ("demo", "run", "explain", "backbones", "pretrain", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probe",
        description="Did this self-supervised backbone learn semantic concepts, and where does it look?",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for expected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"probe.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ProbeError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"probe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"probe {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
