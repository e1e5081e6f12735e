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
    ls.add_argument(
        "--methods",
        action="store_true",
        help="also ask the attribution package which default methods explain each architecture "
        "(a structural check of a weightless build, about a second each)",
    )
    ls.set_defaults(handler=lambda args: print_list(methods=args.methods))
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


def _methods(defaults) -> str:
    """``"agf (+ gradcam, integrated_gradients)"``, or a note that no default method explains it."""
    if defaults is None:
        return "none by default (choose with --method)"
    return f"{defaults.method} (+ {', '.join(defaults.baselines)})" if defaults.baselines else defaults.method


def print_list(out: TextIO | None = None, *, methods: bool = False) -> int:
    """Print the known checkpoint formats and architectures, plugins included; with ``methods``, the default
    attribution methods of each architecture, as the attribution package answers for a weightless build."""
    from backbones import list_archs, list_formats

    out = out or sys.stdout
    print("Checkpoint formats (detected automatically; force one with --format):", file=out)
    rows: list[tuple[str, ...]] = [("NAME", "FAMILY", "ORIGIN", "DETECTION SIGNAL")]
    rows += [(f.name, f.title, f.origin, f.signal) for f in list_formats()]
    _table(rows, out)
    print(f"Containers: {CONTAINERS}", file=out)
    print("\nArchitectures (detected from key names and shapes; force one with --arch):", file=out)
    rows = [("NAME", "FAMILY", "INPUT", "NORMALISATION", *(("METHODS",) if methods else ()), "ORIGIN", "DESCRIPTION")]
    for a in sorted(list_archs(), key=_arch_order):
        explained = (_arch_methods(a.name),) if methods else ()
        rows.append(
            (
                a.name,
                a.family,
                str(a.input_size),
                a.preprocessing.normalization.name,
                *explained,
                a.origin,
                a.description,
            )
        )
    _table(rows, out)
    if not methods:
        print("(probe backbones list --methods adds the default attribution methods of each architecture)", file=out)
    return 0


def _arch_methods(arch: str, arch_kwargs: dict | None = None) -> str:
    from probe.errors import ProbeError
    from probe.pipeline.methods import arch_defaults

    try:
        return _methods(arch_defaults(arch, arch_kwargs))
    except (ProbeError, RuntimeError, TypeError, ValueError) as exc:  # a plugin that cannot be built weightless
        return f"unknown ({type(exc).__name__})"


def print_inspect(
    file: str | os.PathLike, *, format: str | None = None, arch: str | None = None, out: TextIO | None = None
) -> int:
    """Print what ``backbones.inspect`` finds; returns 0 if the file would load, 1 if it would not."""
    from backbones import inspect

    report = inspect(file, format=format, arch=arch)
    out = out or sys.stdout
    print(report.to_text(), file=out)
    if report.arch is not None:
        print(f"{'methods:':<17}{_arch_methods(report.arch, report.arch_kwargs)} (probe run's default)", file=out)
    return 0 if report.loadable else 1
