#!/usr/bin/env python3
"""The pipeline benchmark: the same as `probe bench pipeline` (see probe/bench/pipeline.py and docs/BENCHMARKS.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", "pipeline", *sys.argv[1:]]))
