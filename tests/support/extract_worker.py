"""Extraction in a child process, for the tests that need one.

    torchrun --nproc_per_node=P extract_worker.py distributed IMAGES CACHE_DIR OUT_PREFIX
        extract with and without a cache; save what each rank got (test_distributed.py)
    torchrun --nproc_per_node=2 extract_worker.py late_rank IMAGES CACHE_DIR OUT_PREFIX
        the same, but rank 1 opens the work area only after rank 0 has flushed a finished batch into it
    python extract_worker.py slow IMAGES CACHE_DIR
        extract slowly, printing "forward N" after each batch, until killed (test_features.py)

SIGINT gets Python's usual handler even when the test runs in a background shell, which starts children
with SIGINT ignored: the child stands for an extraction run in a terminal.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import unsupervised.cache as feature_cache
from tests.support.unsup_helpers import StandInBackbone
from unsupervised import ImageFolderData, extract_features

LATE_RANK_PATIENCE_S = 120.0


class SlowBackbone(StandInBackbone):
    def forward(self, x):
        out = super().forward(x)
        time.sleep(0.3)
        print(f"forward {self.forward_calls}", flush=True)
        return out


def distributed(images: str, cache_dir: str, out: str) -> None:
    rank = int(os.environ["RANK"])
    report = {}
    for name, cache in (("cached", cache_dir), ("temporary", None)):
        backbone = StandInBackbone()
        features = extract_features(backbone, ImageFolderData(images), batch_size=2, cache_dir=cache)
        np.save(f"{out}.{name}.rank{rank}.npy", np.asarray(features))
        report[name] = {
            "forward_calls": backbone.forward_calls,
            "paths": features.paths,
            "key": features.key,
            "skipped": features.skipped,
        }
    with open(f"{out}.rank{rank}.json", "w") as handle:
        json.dump(report, handle)


def late_rank(images: str, cache_dir: str, out: str) -> None:
    """``distributed`` with one interleaving forced: rank 0 flushes after every batch, and rank 1 does not open
    the work area (so reads nothing of it) until rank 0 has flushed a finished batch there. Rank 1 records,
    per extraction, whether it saw those rows; the wait is bounded, so code that cannot let rank 0 run ahead
    is slowed and reported, never hung."""
    feature_cache.FLUSH_EVERY_S = 0.0
    if int(os.environ["RANK"]) == 1:
        opened = feature_cache.Partial.__init__
        saw_rows_of_rank0: list[bool] = []

        def open_after_rank0_flushed(self, directory: Path, rank: int) -> None:
            deadline = time.monotonic() + LATE_RANK_PATIENCE_S
            while not (seen := bool((np.load(directory / "status.npy") == feature_cache.DONE).any())):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            saw_rows_of_rank0.append(seen)
            opened(self, directory, rank)

        feature_cache.Partial.__init__ = open_after_rank0_flushed
    distributed(images, cache_dir, out)
    if int(os.environ["RANK"]) == 1:
        Path(f"{out}.late_rank.json").write_text(json.dumps(saw_rows_of_rank0))


def slow(images: str, cache_dir: str) -> None:
    extract_features(SlowBackbone(), ImageFolderData(images), batch_size=2, cache_dir=cache_dir)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    {"distributed": distributed, "late_rank": late_rank, "slow": slow}[sys.argv[1]](*sys.argv[2:])
