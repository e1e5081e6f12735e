"""``probe backbones``: list known formats and architectures, inspect a checkpoint."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backbones", help="list checkpoint formats and architectures, or inspect a checkpoint")
    inner = p.add_subparsers(dest="backbones_command", metavar="ACTION")
    inner.required = True
    ls = inner.add_parser("list", help="formats and architectures known, plugins included")
    ls.set_defaults(handler=_list)
    ins = inner.add_parser(
        "inspect",
        help="detected format, architecture, sizes, normalisation, dropped keys (exit 1 if the file would not load)",
    )
    ins.add_argument("file", help="checkpoint file")
    ins.add_argument("--format", help="force a format instead of detecting it")
    ins.add_argument("--arch", help="force an architecture")
    ins.set_defaults(handler=_inspect)


def _list(args: argparse.Namespace) -> int:
    from backbones.cli import print_list

    print_list()
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from backbones.cli import print_inspect

    return print_inspect(args.file, format=args.format, arch=args.arch)
