"""Argument types and argument groups shared by several subcommands, and the hand-off to the library."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from probe.pipeline.options import DEVICE


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)


def csv_list(text: str) -> list[str]:
    """argparse type: a comma-separated list (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` the user gave (not None), as keyword arguments: the library's own
    defaults apply to the others, so each default is declared once, in the library."""
    values = {name: getattr(args, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def add_device_argument(p: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """--device; without a ``default`` the library's own default applies."""
    p.add_argument("--device", default=default, help=f"cpu, cuda, cuda:N or auto (default: {default or DEVICE})")


def add_backbone_arguments(p: argparse.ArgumentParser, *, weights_help: str | None = None) -> None:
    """--weights/--format/--arch/--device, as every command that loads a checkpoint takes them.

    With ``weights_help``, --weights is optional (e.g. ``probe explain`` finds it in its --run folder).
    """
    p.add_argument("--weights", required=weights_help is None, help=weights_help or "checkpoint file of the backbone")
    p.add_argument("--format", help="checkpoint format (default: detected; see `probe backbones list`)")
    p.add_argument("--arch", help="architecture (default: detected; see `probe backbones list`)")
    add_device_argument(p)


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """--threads: torch's threads in this process (one per process is often fastest where cores are shared)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch threads of this process (default: torch's choice, one per core; on a machine that "
        "other jobs share, 1 is often faster)",
    )


def use_threads(threads: int | None) -> None:
    """Apply --threads (nothing when it was not given)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
