"""``probe run``: the main job on a user's checkpoint and image folder."""

from __future__ import annotations

import argparse

from .common import add_backbone_arguments, csv_list, int_at_least, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="cluster a checkpoint's features, explain the pseudo-classes, write a report")
    add_backbone_arguments(p)
    p.add_argument("--data", required=True, help="image folder (ImageFolder layout or flat)")
    p.add_argument("--masks", help="folder of object masks mirroring --data (binary or label images)")
    p.add_argument("--k", type=int_at_least(2), required=True, help="number of pseudo-classes (>= 2)")
    p.add_argument("--out", required=True, help="output directory for report.html, metrics.json, figures/")
    p.add_argument("--method", default="agf", help="attribution method to explain with (default: %(default)s)")
    p.add_argument("--baselines", type=csv_list, default=["gradcam", "integrated_gradients"],
                   help="comma-separated baseline methods (default: gradcam,integrated_gradients)")
    p.add_argument("--max-images", type=positive_int, help="use at most this many images (seeded sample)")
    p.add_argument("--eval-images", type=positive_int,
                   help="explain and evaluate at most this many images, up to 16 per pseudo-class "
                        "(a seeded, stratified subset; default: 256)")
    p.add_argument("--restarts", type=positive_int,
                   help="k-means runs, the lowest objective kept (default: 10; 1 is the fastest)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default: %(default)s)")
    p.add_argument("--num-workers", type=int_at_least(0), default=0, help="data-loading worker processes (default: %(default)s)")
    p.add_argument("--cache-dir", help="feature cache directory (default: OUT/cache)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed (default: %(default)s)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from probe.pipeline import run_from_args

    run_from_args(args)
    return 0
