"""``probe pretrain``: train a reference backbone on the synthetic world."""

from __future__ import annotations

import argparse

from .common import int_at_least, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="train a small reference backbone on the synthetic world")
    p.add_argument("--method", required=True, help="simclr, moco, byol or supervised")
    p.add_argument("--out", required=True, help="checkpoint file to write (in the method's native layout)")
    p.add_argument("--steps", type=positive_int, help="optimisation steps (default: the method's documented budget)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed (default: %(default)s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from probe.demo.pretrain import pretrain_from_args

    pretrain_from_args(args)
    return 0
