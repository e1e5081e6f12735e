"""``probe bench``: the speed and memory benchmarks, as ratios measured side by side.

``probe bench [--quick]`` runs them all; ``probe bench NAME [options]`` runs one with its own options.
"""

from __future__ import annotations

import argparse
import importlib

from .common import add_device_argument, positive_int


def _attribution(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes: resnet18,vgg11, batch 2, 64 px, 1 repeat")
    p.add_argument("--models", help="torchvision architectures, comma-separated (default: resnet50,vgg16)")
    p.add_argument("--batch", type=positive_int, help="images per call (default: 8)")
    p.add_argument("--size", type=positive_int, help="image height and width (default: 224)")
    p.add_argument("--repeats", type=positive_int, help="timed calls per method after a warm-up (default: 3)")
    p.add_argument(
        "--no-memory", dest="memory", action="store_false", default=None, help="skip the peak-memory subprocesses"
    )
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write the measurements to this JSON file")


def _clustering(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="20,000 x 32, k = 20 only")
    p.add_argument("--skip-large", action="store_true", help="leave out the 1,000,000 x 256 case")
    p.add_argument("--sklearn-cap-min", type=float, help="stop scikit-learn after this many minutes (default: 20)")
    p.add_argument("--seeds", type=positive_int, help="seeds of ours per case (default: 3)")
    p.add_argument(
        "--repeat",
        type=positive_int,
        help="time each run this many times and keep the fastest (default: 3; the 1,000,000 case runs once)",
    )
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write the rows to this JSON file")


def _evaluation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="resnet18 at 112 px on 4 images")
    p.add_argument("--images", type=positive_int, help="number of images (default: 32, quick: 4)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default: 16)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")


def _extraction(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="ResNet-18 on 24 small images: a smoke run")
    p.add_argument("--arch", help="torchvision architecture (default: resnet50; quick: resnet18)")
    p.add_argument("--images", type=positive_int, help="number of images (default: 128; quick: 24)")
    p.add_argument("--repeat", type=positive_int, help="runs per row, best kept (default: 2; quick: 1)")
    p.add_argument("--image-size", help="source JPEG size WxH (default: 500x375; quick: 160x120)")
    p.add_argument("--input-size", type=positive_int, help="model input size (default: 224; quick: 112)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default: 32; quick: 8)")
    p.add_argument("--workers", help="comma-separated worker counts (default: 0,1,2; quick: 0,1)")
    add_device_argument(p)
    p.add_argument("--threads", type=positive_int, help="torch threads for the forward (default: torch's choice)")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write the results to this JSON file")


def _pipeline(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--case",
        choices=("shapes", "digits"),
        help="shapes: generated shapes, ResNet-50 (default); digits: 600 scikit-learn digits, MoCo v2-layout ResNet-18",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run (shapes: resnet_small, 48 images at 64 px, k=3; digits: 80 digits)",
    )
    p.add_argument("--images", type=positive_int, help="number of images (default: shapes 2000, digits 600)")
    p.add_argument("--image-size", type=positive_int, help="shapes: image side in pixels (default: 224, quick: 64)")
    p.add_argument("--arch", help="shapes: torchvision architecture or resnet_small (default: resnet50)")
    p.add_argument("--k", type=positive_int, help="shapes: pseudo-classes (default: 10, quick: 3)")
    p.add_argument("--eval-images", type=positive_int, help="evaluation subset cap (default: probe run's)")
    p.add_argument(
        "--eval-precision",
        type=float,
        help="stop evaluating once the primary gap is known within this (default: probe run's; 0: all)",
    )
    p.add_argument("--baselines", help="comma-separated baselines (default: probe run's)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default: probe run's)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument("--work", help="keep images, checkpoint and run output in this folder")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write the measurements to this JSON file")


def _fidelity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", choices=("digits", "demo"), help="digits (default) or the demo world")
    p.add_argument("--quick", action="store_true", help="digits: 8 per class, a smoke run")
    p.add_argument(
        "--slow-code", help="a checkout whose code runs the slow path (default: this one with --eval-precision 0)"
    )
    p.add_argument("--work", help="keep the case's files and both runs in this folder")
    p.add_argument("--markdown", dest="markdown_path", metavar="FILE", help="also write the comparison to this file")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write the comparison to this JSON file")


def _scaling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="100 and 200 images: a smoke run")
    p.add_argument("--sizes", help="comma-separated numbers of images (default: 1000,2000,5000,10000,20000)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--threads", type=positive_int, help="torch threads of each run (default: torch's choice)")
    p.add_argument("--work", help="keep the images and the runs in this folder")
    p.add_argument("--plot", dest="plot_path", metavar="PNG", help="also plot time and memory against images")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write the rows to this JSON file")


def _vit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes: batch 2, 112 px, 1 repeat")
    p.add_argument("--model", help="timm ViT (default: vit_small_patch16_224)")
    p.add_argument("--batch", type=positive_int, help="images per call (default: 8)")
    p.add_argument("--size", type=positive_int, help="image height and width (default: 224)")
    p.add_argument("--repeats", type=positive_int, help="timed calls per method after a warm-up (default: 3)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--cpu-time",
        action="store_true",
        default=None,
        help="time with this process's CPU time instead of wall time (with --threads 1: robust on a "
        "machine other jobs share)",
    )
    p.add_argument(
        "--no-memory", dest="memory", action="store_false", default=None, help="skip the peak-memory subprocesses"
    )
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write the measurements to this JSON file")


#: Each benchmark: its one-line help and its options, which ``probe.bench.NAME.run`` takes as keywords.
OPTIONS = {
    "attribution": ("AGF and Grad-CAM vs a plain forward+backward: time and peak memory", _attribution),
    "clustering": ("our k-means vs scikit-learn's k-means++ and faiss defaults", _clustering),
    "evaluation": ("the evaluate stage, batched vs one image at a time", _evaluation),
    "extraction": ("extract_features vs the bare forward, and the feature cache", _extraction),
    "fidelity": ("verdicts and figures of the slow path and the fast defaults, with intervals", _fidelity),
    "pipeline": ("per-stage times of probe run, and the run against its extraction", _pipeline),
    "scaling": ("time per stage and peak memory of probe run against the number of images", _scaling),
    "vit": ("ViT attribution methods vs a plain forward+backward: time and peak memory", _vit),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run speed/memory benchmarks (see docs/BENCHMARKS.md)",
        description="Without NAME: every benchmark, with its default options or --quick.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    inner = p.add_subparsers(dest="bench", metavar="NAME", help=f"one benchmark: {', '.join(OPTIONS)}")
    for name, (text, add_options) in OPTIONS.items():
        one = inner.add_parser(name, help=text)
        add_options(one)
        one.set_defaults(handler=run)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The chosen benchmark with the options given (the benchmark's own defaults for the rest), or all."""
    names = [args.bench] if args.bench else list(OPTIONS)
    for name in names:
        options = {
            key: value
            for key, value in vars(args).items()
            if key not in ("command", "bench", "debug", "handler") and value is not None
        }
        importlib.import_module(f"probe.bench.{name}").run(**options)
    return 0
