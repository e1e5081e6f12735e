"""Extraction in a child process, for the tests that need one.

    torchrun --nproc_per_node=P extract_worker.py distributed IMAGES CACHE_DIR OUT_PREFIX
        extract with and without a cache; save what each rank got (test_distributed.py)
    python extract_worker.py slow IMAGES CACHE_DIR
        extract slowly, printing "forward N" after each batch, until killed (test_features.py)
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from unsup_helpers import StandInBackbone
from unsupervised import ImageFolderData, extract_features


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
        report[name] = {"forward_calls": backbone.forward_calls, "paths": features.paths, "key": features.key,
                        "skipped": features.skipped}
    with open(f"{out}.rank{rank}.json", "w") as handle:
        json.dump(report, handle)


def slow(images: str, cache_dir: str) -> None:
    extract_features(SlowBackbone(), ImageFolderData(images), batch_size=2, cache_dir=cache_dir)


if __name__ == "__main__":
    {"distributed": distributed, "slow": slow}[sys.argv[1]](*sys.argv[2:])
