"""Output of ``probe backbones list`` and ``probe backbones inspect``."""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

from .formats import list_formats
from .loader import inspect
from .registry import CIFAR_MEAN, IMAGENET_MEAN, ArchSpec, list_archs

CONTAINERS = (
    "read: torch zip files (.pth, .pth.tar, .ckpt, .torch), legacy torch files, .safetensors; "
    "refused: plain pickles (dill/JAX .pkl such as BYOL's release), files needing non-allowlisted globals"
)


def _table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
        print("  " + "  ".join(cells).rstrip(), file=out)


def print_list(out: TextIO | None = None) -> None:
    """Print the known checkpoint formats and architectures, plugins included."""
    out = out or sys.stdout
    print("Checkpoint formats (detected automatically; force one with --format):", file=out)
    rows = [("NAME", "FAMILY", "ORIGIN", "DETECTION SIGNAL")]
    rows += [(f.name, f.title, f.origin, f.signal) for f in list_formats()]
    _table(rows, out)
    print(f"Containers: {CONTAINERS}", file=out)
    print("\nArchitectures (detected from key names and shapes; force one with --arch):", file=out)
    rows = [("NAME", "FAMILY", "INPUT", "NORMALISATION", "AGF", "ORIGIN", "DESCRIPTION")]
    for a in sorted(list_archs(), key=_arch_order):
        norm = {None: "[0,1]", IMAGENET_MEAN: "imagenet", CIFAR_MEAN: "cifar"}.get(a.mean, "custom")
        rows.append((a.name, a.family, str(a.input_size), norm, "yes" if a.agf_supported else "no", a.origin, a.description))
    _table(rows, out)


def _arch_order(spec: ArchSpec) -> tuple:
    """Family, then name with numbers compared as numbers (resnet18 before resnet101)."""
    return spec.family, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", spec.name)]


def print_inspect(file: str | os.PathLike, *, format: str | None = None, arch: str | None = None, out: TextIO | None = None) -> int:
    """Print what ``backbones.inspect`` finds; returns 0 if the file would load, 1 if it would not."""
    report = inspect(file, format=format, arch=arch)
    print(report.to_text(), file=out or sys.stdout)
    return 0 if report.loadable else 1
