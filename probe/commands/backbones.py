"""``probe backbones``: list known formats and architectures, inspect a checkpoint."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import TextIO

CONTAINERS = (
    "read: torch zip files (.pth, .pth.tar, .ckpt, .torch), legacy torch files, .safetensors; "
    "refused: plain pickles (dill/JAX .pkl such as BYOL's release), TorchScript archives (such as OpenAI's CLIP .pt), "
    "files needing non-allowlisted globals"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backbones", help="list checkpoint formats and architectures, or inspect a checkpoint")
    inner = p.add_subparsers(dest="backbones_command", metavar="ACTION")
    inner.required = True
    ls = inner.add_parser("list", help="formats and architectures known, plugins included")
    ls.set_defaults(handler=lambda args: print_list())
    ins = inner.add_parser(
        "inspect",
        help="detected format, architecture, sizes, normalisation, dropped keys (exit 1 if the file would not load)",
    )
    ins.add_argument("file", help="checkpoint file")
    ins.add_argument("--format", help="force a format instead of detecting it")
    ins.add_argument("--arch", help="force an architecture")
    ins.set_defaults(handler=lambda args: print_inspect(args.file, format=args.format, arch=args.arch))


def _table(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
        print("  " + "  ".join(cells).rstrip(), file=out)


def _arch_order(spec) -> tuple:
    """Family, then name with numbers compared as numbers (resnet18 before resnet101)."""
    return spec.family, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", spec.name)]


def print_list(out: TextIO | None = None) -> int:
    """Print the known checkpoint formats and architectures, plugins included."""
    from backbones import list_archs, list_formats

    out = out or sys.stdout
    print("Checkpoint formats (detected automatically; force one with --format):", file=out)
    rows: list[tuple[str, ...]] = [("NAME", "FAMILY", "ORIGIN", "DETECTION SIGNAL")]
    rows += [(f.name, f.title, f.origin, f.signal) for f in list_formats()]
    _table(rows, out)
    print(f"Containers: {CONTAINERS}", file=out)
    print("\nArchitectures (detected from key names and shapes; force one with --arch):", file=out)
    rows = [("NAME", "FAMILY", "INPUT", "NORMALISATION", "AGF", "ORIGIN", "DESCRIPTION")]
    for a in sorted(list_archs(), key=_arch_order):
        agf = "yes" if a.agf_supported else "no"
        rows.append((a.name, a.family, str(a.input_size), a.preprocessing.normalization.name, agf, a.origin,
                     a.description))
    _table(rows, out)
    return 0


def print_inspect(file: str | os.PathLike, *, format: str | None = None, arch: str | None = None,
                  out: TextIO | None = None) -> int:
    """Print what ``backbones.inspect`` finds; returns 0 if the file would load, 1 if it would not."""
    from backbones import inspect

    report = inspect(file, format=format, arch=arch)
    print(report.to_text(), file=out or sys.stdout)
    return 0 if report.loadable else 1
