"""The handlers behind ``probe run`` and ``probe explain``: arguments in, results and a summary out."""

from __future__ import annotations

import argparse

from .explain_image import explain_image
from .run import run_probe
from .summary import closing_summary


def run_from_args(args: argparse.Namespace) -> None:
    """``probe run``: the whole job, then where the report is and a summary table on stdout."""
    out = args.out
    optional = {name: getattr(args, name) for name in ("eval_images", "restarts") if getattr(args, name) is not None}
    results = run_probe(
        args.weights, data=args.data, k=args.k, out=out, masks=args.masks, format=args.format, arch=args.arch,
        method=args.method, baselines=tuple(args.baselines), max_images=args.max_images, device=args.device,
        batch_size=args.batch_size, num_workers=args.num_workers, cache_dir=args.cache_dir, seed=args.seed, **optional,
    )
    print(closing_summary(results, out))


def explain_from_args(args: argparse.Namespace) -> None:
    """``probe explain``: one image's map for one pseudo-class, its overlay PNG, the class probabilities."""
    result = explain_image(
        args.image, run=args.run, weights=args.weights, format=args.format, arch=args.arch,
        pseudo_class=args.pseudo_class, rank=args.rank, method=args.method, out=args.out, device=args.device,
    )
    print(result.describe())
