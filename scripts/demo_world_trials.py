"""Run one named pretraining trial of the demo world (the trials recorded in docs/DEMO_WORLD.md).

    PYTHONPATH=. python scripts/demo_world_trials.py TRIAL [--seed 0] [--out DIR]

Each trial is a recipe override; measurements go to DIR/trials.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from probe.demo.augment import AugmentConfig  # noqa: E402
from probe.demo.pretrain import pretrain, recipe  # noqa: E402
from probe.demo.world import WorldConfig  # noqa: E402

ROT = AugmentConfig(rotate=180, noise=0.05)

BIG = WorldConfig(radius=(0.09, 0.15), instances=(2, 5))
BIG_ROT = AugmentConfig(scale=(0.15, 0.4), rotate=180, noise=0.05)

TRIALS = {
    "t01_simclr_local": ("simclr", dict(steps=600)),
    "t02_simclr_global": ("simclr", dict(steps=600, augment=AugmentConfig(scale=(0.4, 1.0)))),
    "t03_moco_local": ("moco", dict(steps=600)),
    "t04_byol_local": ("byol", dict(steps=600)),
    "t05_supervised": ("supervised", dict(steps=600)),
    "t06_simclr_local_rot": ("simclr", dict(steps=600, augment=AugmentConfig(rotate=180, noise=0.05))),
    "t07_byol_rot_b128": ("byol", dict(steps=600, batch_size=128, augment=ROT)),
    "t08_moco_rot_b128": ("moco", dict(steps=600, batch_size=128, augment=ROT)),
    "t09_simclr_rot_b128_t05": ("simclr", dict(steps=600, batch_size=128, augment=ROT, objective_kwargs={"temperature": 0.5})),
    "t10_simclr_big_local_b128": ("simclr", dict(steps=1200, batch_size=128, world=BIG, augment=BIG_ROT)),
    "t11_simclr_big_local_b128_t05": ("simclr", dict(steps=1200, batch_size=128, world=BIG, augment=BIG_ROT, objective_kwargs={"temperature": 0.5})),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trial", choices=sorted(TRIALS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="trials")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids stalls on a shared machine)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    method, overrides = TRIALS[args.trial]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    r = recipe(method, **overrides)
    summary = pretrain(r, out / f"{args.trial}.pth", seed=args.seed, device="auto", log=out / f"{args.trial}.jsonl", cache_dir=out / "cache")
    with open(out / "trials.jsonl", "a") as handle:
        handle.write(json.dumps({"trial": args.trial, **{k: v for k, v in summary.items() if k != "history"}}) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
