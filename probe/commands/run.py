"""``probe run``: the main job on a user's checkpoint and image folder."""

from __future__ import annotations

import argparse

from probe.pipeline.options import (
    EVAL_IMAGES,
    EVAL_PRECISION,
    EVAL_ROUND,
    KMEANS_RESTARTS,
    ProbeOptions,
    describe_defaults,
)

from .common import (
    add_backbone_arguments,
    add_threads_argument,
    csv_list,
    given,
    int_at_least,
    positive_int,
    use_threads,
)

#: The options passed on to ``run_probe`` when given; ``ProbeOptions`` holds their defaults.
OPTIONAL = (
    "masks",
    "format",
    "arch",
    "device",
    "method",
    "baselines",
    "max_images",
    "eval_images",
    "eval_precision",
    "restarts",
    "batch_size",
    "num_workers",
    "cache_dir",
    "seed",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="cluster a checkpoint's features, explain the pseudo-classes, write a report")
    add_backbone_arguments(p)
    p.add_argument("--data", required=True, help="image folder (ImageFolder layout or flat)")
    p.add_argument("--masks", help="folder of object masks mirroring --data (binary or label images)")
    p.add_argument("--k", type=int_at_least(2), required=True, help="number of pseudo-classes (>= 2)")
    p.add_argument("--out", required=True, help="output directory for report.html, metrics.json, figures/")
    p.add_argument("--method", help=f"attribution method to explain with (default by backbone: {describe_defaults()})")
    p.add_argument(
        "--baselines",
        type=csv_list,
        help="comma-separated baseline methods (default: those of the backbone's default, above)",
    )
    p.add_argument("--max-images", type=positive_int, help="use at most this many images (seeded sample)")
    p.add_argument(
        "--eval-images",
        type=positive_int,
        help=f"explain and evaluate at most this many images, up to {ProbeOptions.eval_per_class} per "
        f"pseudo-class (a seeded, stratified subset; default: {EVAL_IMAGES})",
    )
    p.add_argument(
        "--eval-precision",
        type=float,
        help=f"evaluate in rounds of {EVAL_ROUND} images until the primary method's faithfulness gap is "
        f"known within +- this (95%% interval); 0 evaluates every image of the subset "
        f"(default: {EVAL_PRECISION})",
    )
    p.add_argument(
        "--restarts",
        type=positive_int,
        help=f"k-means runs, the lowest objective kept (default: {KMEANS_RESTARTS}; 1 is the fastest)",
    )
    p.add_argument("--batch-size", type=positive_int, help=f"batch size (default: {ProbeOptions.batch_size})")
    p.add_argument(
        "--num-workers",
        type=int_at_least(0),
        help=f"data-loading worker processes (default: {ProbeOptions.num_workers})",
    )
    p.add_argument("--cache-dir", help="feature cache directory (default: OUT/cache)")
    p.add_argument("--seed", type=int_at_least(0), help=f"seed (default: {ProbeOptions.seed})")
    add_threads_argument(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The whole job, then a summary table and where the report is, on stdout."""
    from probe.pipeline.run import run_probe
    from probe.pipeline.summary import closing_summary

    use_threads(args.threads)
    options = given(args, *OPTIONAL)
    if "baselines" in options:
        options["baselines"] = tuple(options["baselines"])
    results = run_probe(args.weights, data=args.data, k=args.k, out=args.out, **options)
    print(closing_summary(results, args.out))
    return 0
