"""``probe bench``: the speed and memory benchmarks, as ratios measured side by side."""

from __future__ import annotations

import argparse

BENCHES = ("attribution", "clustering", "evaluation", "extraction", "pipeline", "vit")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run speed/memory benchmarks (see docs/BENCHMARKS.md)")
    p.add_argument("which", nargs="*", choices=BENCHES, default=list(BENCHES), metavar="NAME",
                   help=f"benchmarks to run: {', '.join(BENCHES)} (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import importlib

    for name in args.which:
        importlib.import_module(f"probe.bench.{name}").main(["--quick"] if args.quick else [])
    return 0
