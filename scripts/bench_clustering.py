#!/usr/bin/env python
"""Clustering benchmark (see probe/bench/clustering.py and docs/BENCHMARKS.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.bench.clustering import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
