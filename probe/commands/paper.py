"""``probe paper``: the AGF paper's perturbation and ImageNet-segmentation benchmarks on your own copy
of the data, for a torchvision classifier or a ``probe run`` folder's pseudo-class probe."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_device_argument, given, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("paper", help="the AGF paper's perturbation and ImageNet-segmentation benchmarks")
    p.add_argument(
        "--model", required=True, help="torchvision classifier name (with --weights) or a `probe run` output directory"
    )
    p.add_argument("--weights", help="local state-dict file of the torchvision classifier")
    p.add_argument("--imagenet-val", help="ImageNet-style validation folder (one sub-folder per class)")
    p.add_argument("--class-index", help="folder -> output index mapping (JSON or text); default: sorted folders")
    p.add_argument("--imagenet-seg", help="gtsegs_ijcv.mat (ImageNet-segmentation, MATLAB v7.3)")
    p.add_argument("--method", help="attribution method (default: agf)")
    p.add_argument(
        "--explain-class",
        metavar="{label,predicted}",
        help="perturbation: explain the ground-truth or the predicted class (default: label)",
    )
    p.add_argument(
        "--threshold",
        metavar="{mean,zero}",
        help="segmentation: binarise maps above their mean or above 0 (default: mean)",
    )
    p.add_argument("--image-size", type=positive_int, help="square input size (default: 224)")
    p.add_argument("--limit", type=positive_int, help="use only the first N images of each set")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default: 16)")
    add_device_argument(p, default="auto")
    p.add_argument("--out", default="paper-benchmarks.json", help="JSON results file (default: %(default)s)")
    p.set_defaults(handler=run)


def classifier(model: str, weights: str | None, device):
    """``--model``: a ``probe run`` folder's pseudo-class probe, or a torchvision classifier with ``--weights``."""
    from probe.errors import ParameterError
    from probe.evaluation.paper import Classifier, load_classifier

    if Path(model).is_dir():
        from probe.pipeline.saved import load_probe_model

        saved = load_probe_model(model, device=device)
        return Classifier(saved.model, saved.normalization, saved.num_classes, f"probe run {model}", labelled=False)
    if weights is None:
        raise ParameterError(
            "weights", f"not given: the torchvision classifier {model} needs its weights file (nothing is downloaded)"
        )
    return load_classifier(model, weights, device)


def run(args: argparse.Namespace) -> int:
    """Run the requested benchmarks, write the JSON and print the table."""
    from probe.devices import resolve_device
    from probe.evaluation.paper import benchmark, format_table, read_class_index
    from probe.fileio import atomic_write_json

    device = resolve_device(args.device)
    clf = classifier(args.model, args.weights, device)
    index = read_class_index(args.class_index) if args.class_index else None
    results = benchmark(
        clf,
        class_index=index,
        device=device,
        **given(
            args,
            "imagenet_val",
            "imagenet_seg",
            "method",
            "explain_class",
            "threshold",
            "image_size",
            "limit",
            "batch_size",
        ),
    )
    atomic_write_json(args.out, results)
    print(format_table(results))
    print(f"results written to {args.out}")
    return 0
