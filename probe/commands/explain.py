"""``probe explain``: one image, one pseudo-class, one map."""

from __future__ import annotations

import argparse

from probe.pipeline.options import describe_defaults

from .common import add_backbone_arguments, given


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain one image's pseudo-class (AGF on CNNs, transformer attribution on ViTs, or another method)",
    )
    add_backbone_arguments(
        p,
        weights_help="checkpoint file (default: the one recorded in --run; if given, "
        "it must be the checkpoint the run was made with)",
    )
    p.add_argument("--image", required=True, help="image file")
    p.add_argument("--run", help="output directory of an earlier `probe run` (its pseudo-classes and head)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--pseudo-class", type=int, help="pseudo-class id to explain")
    which.add_argument("--rank", type=int, help="explain the class ranked R-th by the head (0 = top-1)")
    p.add_argument("--method", help=f"attribution method (default by backbone: {describe_defaults()})")
    p.add_argument("--out", help="where to write the overlay PNG (default: ./<image stem>.<method>.pc<C>.png)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """One image's map for one pseudo-class, its overlay PNG, the class probabilities on stdout."""
    from probe.pipeline.one_image import explain_image

    options = given(args, "weights", "format", "arch", "pseudo_class", "rank", "method", "out", "device")
    print(explain_image(args.image, run=args.run, **options).describe())
    return 0
