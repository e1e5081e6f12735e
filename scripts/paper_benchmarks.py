#!/usr/bin/env python3
"""Reproduce the AGF paper's perturbation and ImageNet-segmentation tables on your own copy of the data:
the same as ``probe paper``.

Example:
    python scripts/paper_benchmarks.py --model resnet50 --weights resnet50.pth \
        --imagenet-val /data/imagenet/val --imagenet-seg /data/gtsegs_ijcv.mat --method agf --device cuda

The benchmarks are in probe.evaluation.paper; see docs/EVALUATION.md for the protocols.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from probe.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["paper", *sys.argv[1:]]))
