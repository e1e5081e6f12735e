"""Train a reference backbone on the synthetic world (same as ``probe pretrain``).

    PYTHONPATH=. python scripts/pretrain.py --method moco --out moco.pth --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.commands import pretrain as command  # noqa: E402
from probe.demo.pretrain import pretrain_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/pretrain.py")
    command.register(parser.add_subparsers(dest="command", required=True))
    pretrain_from_args(parser.parse_args(["pretrain", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    main()
