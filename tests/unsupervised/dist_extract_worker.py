"""Run by test_distributed.py under torchrun: extract features with and without a cache, save what each rank got.

Usage: torchrun --nproc_per_node=P dist_extract_worker.py IMAGES CACHE_DIR OUT_PREFIX
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from unsup_helpers import StandInBackbone
from unsupervised import ImageFolderData, extract_features

images, cache_dir, out = sys.argv[1:4]
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
