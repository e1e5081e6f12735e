"""``probe pretrain``: train a reference backbone on the synthetic world."""

from __future__ import annotations

import argparse

from probe.pipeline.options import DEVICE

from .common import add_device_argument, given, int_at_least, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="train a small reference backbone on the synthetic world")
    p.add_argument("--method", required=True, help="simclr, moco, byol or supervised")
    p.add_argument("--out", required=True, help="checkpoint file to write (in the method's native layout)")
    p.add_argument("--steps", type=positive_int, help="optimisation steps (default: the method's documented budget)")
    p.add_argument("--seed", type=int_at_least(0), help="seed (default: 0)")
    add_device_argument(p, default=DEVICE)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Train, write the checkpoint, print the held-out measurements."""
    from probe.demo.pretrain import pretrain, recipe

    r = recipe(args.method, **given(args, "steps"))
    summary = pretrain(r, args.out, device=args.device, **given(args, "seed"))
    m = summary["metrics"]
    print(
        f"{r.method}: {summary['steps']} steps in {summary['wall_s']:.0f} s -> {args.out}; held-out NMI {m['nmi']:.3f} "
        f"(single-category images {m['nmi_single']:.3f}), linear probe {m['probe_acc']:.3f}"
    )
    return 0
