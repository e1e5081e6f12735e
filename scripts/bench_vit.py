#!/usr/bin/env python3
"""The ViT attribution benchmark: the same as `probe bench vit`.

See probe/bench/vit.py and docs/BENCHMARKS.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", "vit", *sys.argv[1:]]))
