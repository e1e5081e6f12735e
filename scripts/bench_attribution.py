#!/usr/bin/env python3
"""AGF and Grad-CAM vs a plain forward+backward (time and peak memory); see docs/BENCHMARKS.md.

Usage: PYTHONPATH=. python scripts/bench_attribution.py [--quick] [--models resnet50,vgg16] [--batch 8]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.bench.attribution import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
