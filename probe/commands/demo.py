"""``probe demo``: the whole job on the built-in synthetic world."""

from __future__ import annotations

import argparse

from probe.pipeline.options import ProbeOptions

from .common import add_device_argument, given, int_at_least


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in synthetic world and write a report")
    p.add_argument("--out", default="demo-output", help="output directory (default: %(default)s)")
    add_device_argument(p)
    p.add_argument(
        "--seed", type=int_at_least(0), help=f"seed of the world and every random step (default: {ProbeOptions.seed})"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """World, shipped backbones, report; a summary table on stdout."""
    from probe.demo.runner import run_demo

    run_demo(args.out, **given(args, "device", "seed"))
    return 0
