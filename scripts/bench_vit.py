#!/usr/bin/env python3
"""ViT attribution methods vs a plain forward+backward (time and peak memory); see docs/BENCHMARKS.md.

Usage: PYTHONPATH=. python scripts/bench_vit.py [--quick] [--batch 8] [--size 224] [--threads N]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.bench.vit import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
