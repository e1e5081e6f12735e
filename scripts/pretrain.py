"""Train a reference backbone on the synthetic world: the same as ``probe pretrain``.

PYTHONPATH=. python scripts/pretrain.py --method moco --out moco.pth --seed 0
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
