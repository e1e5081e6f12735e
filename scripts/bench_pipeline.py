#!/usr/bin/env python
"""Pipeline benchmark: per-stage times of probe run (see probe/bench/pipeline.py and docs/BENCHMARKS.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.bench.pipeline import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
