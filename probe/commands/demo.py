"""``probe demo``: the whole job on the built-in synthetic world."""

from __future__ import annotations

import argparse

from .common import int_at_least


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in synthetic world and write a report")
    p.add_argument("--out", default="demo-output", help="output directory (default: %(default)s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the world and every random step (default: %(default)s)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from probe.demo.runner import run_demo

    run_demo(out=args.out, device=args.device, seed=args.seed)
    return 0
