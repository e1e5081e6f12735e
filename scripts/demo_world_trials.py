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
from probe.demo.pretrain import OBJECT_SCALE_VIEWS, pretrain, recipe  # noqa: E402
from probe.demo.world import WorldConfig  # noqa: E402

# Trials t01-t49 drew both categories of a two-category image alike (second_instances=None).
V1 = dict(second_instances=None)
# Trials t30-t49 ran on the second world: 2-5 instances of radius 9-15 % of the image.
SECOND = WorldConfig(instances=(2, 5), radius=(0.09, 0.15), **V1)
# Trials t01-t14 ran on the first world (commit 84ea73e and before): six shapes, 3-6 smaller instances.
OLD = WorldConfig(
    categories=("disc", "square", "triangle", "plus", "ring", "star"), instances=(3, 6), radius=(0.07, 0.13), **V1
)
OLD_BIG = WorldConfig(categories=OLD.categories, instances=(2, 5), radius=(0.09, 0.15), **V1)
PLAIN = AugmentConfig(scale=(0.2, 0.6), rotate=0, noise=0)
ROT = AugmentConfig(scale=(0.2, 0.6), rotate=180, noise=0.05)
BIG_ROT = AugmentConfig(scale=(0.15, 0.4), rotate=180, noise=0.05)
# Trials t15-t23 drew bar and crescent instead of square and star (commit 45371d9).
BAR_CRESCENT = WorldConfig(
    categories=("bar", "crescent", "disc", "plus", "ring", "triangle"), instances=(2, 5), radius=(0.09, 0.15), **V1
)
SOFT = WorldConfig(
    categories=BAR_CRESCENT.categories, instances=(3, 6), radius=(0.09, 0.15), background_contrast=0.4, **V1
)
OLD_SOFT = WorldConfig(categories=OLD.categories, instances=(3, 6), radius=(0.09, 0.15), background_contrast=0.4, **V1)
PATCH = WorldConfig(
    categories=BAR_CRESCENT.categories,
    instances=(3, 6),
    radius=(0.09, 0.15),
    background_contrast=0.5,
    background_regions=(2, 4),
    **V1,
)
SUP_VIEWS = AugmentConfig(scale=(0.5, 1.0), rotate=180, noise=0.05)

SWAP = AugmentConfig(background_swap=1.0)
BIG = WorldConfig(instances=(2, 4), radius=(0.12, 0.2), **V1)
# From t50 on, a two-category image holds one instance of its second category, so its label is unambiguous.
ONE_SECOND = WorldConfig(instances=(2, 5), radius=(0.09, 0.15), second_instances=(1, 1))
# t51 on: the shipped world (WorldConfig()), bigger objects and one instance of the second category.
WIDE = OBJECT_SCALE_VIEWS

TRIALS = {
    "t01_simclr_local": ("simclr", dict(steps=600, batch_size=256, world=OLD, augment=PLAIN)),
    "t06_simclr_local_rot": ("simclr", dict(steps=600, batch_size=256, world=OLD, augment=ROT)),
    "t07_byol_rot_b128": ("byol", dict(steps=600, batch_size=128, world=OLD, augment=ROT)),
    "t08_moco_rot_b128": ("moco", dict(steps=600, batch_size=128, world=OLD, augment=ROT)),
    "t10_simclr_big_local_b128": ("simclr", dict(steps=1200, batch_size=128, world=OLD_BIG, augment=BIG_ROT)),
    "t11_simclr_big_local_b128_t05": (
        "simclr",
        dict(steps=1200, batch_size=128, world=OLD_BIG, augment=BIG_ROT, objective_kwargs={"temperature": 0.5}),
    ),
    "t15_simclr": ("simclr", dict(steps=1200, batch_size=128, world=BAR_CRESCENT)),
    "t16_moco_t03_q1024": (
        "moco",
        dict(steps=1200, batch_size=128, world=BAR_CRESCENT, objective_kwargs={"temperature": 0.3, "queue_size": 1024}),
    ),
    "t17_byol_lr1e3": ("byol", dict(steps=1200, batch_size=128, lr=1e-3, world=BAR_CRESCENT)),
    "t18_supervised_patchwork": ("supervised", dict(steps=1200, batch_size=128, world=PATCH, augment=SUP_VIEWS)),
    "t19_simclr_soft_bg": ("simclr", dict(steps=1200, batch_size=128, world=SOFT)),
    "t20_moco_soft_bg_m09": (
        "moco",
        dict(
            steps=1200,
            batch_size=128,
            world=SOFT,
            objective_kwargs={"temperature": 0.3, "queue_size": 1024, "momentum": 0.9},
        ),
    ),
    "t21_simclr_old_shapes_soft_bg_t05": (
        "simclr",
        dict(steps=1200, batch_size=128, world=OLD_SOFT, objective_kwargs={"temperature": 0.5}),
    ),
    "t23_simclr_patchwork_t05": (
        "simclr",
        dict(steps=1200, batch_size=128, world=PATCH, objective_kwargs={"temperature": 0.5}),
    ),
    "t22_byol_patchwork_m09": (
        "byol",
        dict(steps=1200, batch_size=128, world=PATCH, objective_kwargs={"base_momentum": 0.9}),
    ),
    # t30-t49: the second world (SECOND)
    "t30_simclr_bgswap": ("simclr", dict(steps=1200, batch_size=128, augment=SWAP, world=SECOND)),
    "t31_byol_bgswap": ("byol", dict(steps=1200, batch_size=128, augment=SWAP, world=SECOND)),
    "t32_supervised": ("supervised", dict(steps=800, batch_size=128, world=SECOND, augment=SUP_VIEWS)),
    "t33_moco_bgswap": (
        "moco",
        dict(
            steps=1200,
            batch_size=128,
            augment=SWAP,
            objective_kwargs={"temperature": 0.2, "queue_size": 1024},
            world=SECOND,
        ),
    ),
    "t34_simclr": ("simclr", dict(steps=1200, batch_size=128, world=SECOND, augment=AugmentConfig())),
    "t35_simclr_halfswap": (
        "simclr",
        dict(steps=1200, batch_size=128, augment=AugmentConfig(scale=(0.2, 0.5), background_swap=0.5), world=SECOND),
    ),
    "t36_supervised_1500": ("supervised", dict(steps=1500, batch_size=128, world=SECOND, augment=SUP_VIEWS)),
    "t37_moco": (
        "moco",
        dict(
            steps=800,
            batch_size=128,
            objective_kwargs={"temperature": 0.2, "queue_size": 1024},
            world=SECOND,
            augment=AugmentConfig(),
        ),
    ),
    "t38_byol": ("byol", dict(steps=800, batch_size=128, lr=1e-3, world=SECOND, augment=AugmentConfig())),
    "t39_supervised_wide_crops": (
        "supervised",
        dict(steps=800, batch_size=128, augment=AugmentConfig(scale=(0.7, 1.0)), world=SECOND),
    ),
    "t40_simclr_big_objects": (
        "simclr",
        dict(steps=1200, batch_size=128, world=BIG, augment=AugmentConfig(scale=(0.2, 0.5))),
    ),
    "t41_simclr_2400": ("simclr", dict(steps=2400, batch_size=128, world=SECOND, augment=AugmentConfig())),
    "t42_simclr_big_objects_3000": (
        "simclr",
        dict(steps=3000, batch_size=128, world=BIG, augment=AugmentConfig(scale=(0.2, 0.5))),
    ),
    "t43_supervised_big_objects": ("supervised", dict(steps=800, batch_size=128, world=BIG, augment=SUP_VIEWS)),
    "t44_moco_big_objects": (
        "moco",
        dict(
            steps=800,
            batch_size=128,
            world=BIG,
            augment=AugmentConfig(scale=(0.2, 0.5)),
            objective_kwargs={"temperature": 0.2, "queue_size": 1024},
        ),
    ),
    "t45_byol_big_objects": (
        "byol",
        dict(steps=800, batch_size=128, lr=1e-3, world=BIG, augment=AugmentConfig(scale=(0.2, 0.5))),
    ),
    "t46_simclr_4000": ("simclr", dict(steps=4000, batch_size=128, world=SECOND, augment=AugmentConfig())),
    "t47_moco_2400": (
        "moco",
        dict(
            steps=2400,
            batch_size=128,
            objective_kwargs={"temperature": 0.2, "queue_size": 1024},
            world=SECOND,
            augment=AugmentConfig(),
        ),
    ),
    "t48_simclr_2400_t01": (
        "simclr",
        dict(steps=2400, batch_size=128, objective_kwargs={"temperature": 0.1}, world=SECOND, augment=AugmentConfig()),
    ),
    "t49_simclr_2400_t02": (
        "simclr",
        dict(steps=2400, batch_size=128, objective_kwargs={"temperature": 0.2}, world=SECOND, augment=AugmentConfig()),
    ),
    "t50_simclr_one_second": ("simclr", dict(steps=2400, batch_size=128, world=ONE_SECOND, augment=AugmentConfig())),
    "t51_simclr_one_second_big": ("simclr", dict(steps=2400, batch_size=128, augment=WIDE)),
    "t53_supervised_one_second_big": ("supervised", dict(steps=800, batch_size=128, augment=SUP_VIEWS)),
    "t54_moco_one_second_big": (
        "moco",
        dict(steps=2400, batch_size=128, augment=WIDE, objective_kwargs={"temperature": 0.2, "queue_size": 1024}),
    ),
    "t55_byol_one_second_big": ("byol", dict(steps=800, batch_size=128, lr=1e-3, augment=WIDE)),
    "t56_supervised_object_scale": ("supervised", dict(steps=800, batch_size=128, augment=WIDE)),
    # t57 on: one instance of each category is placed first, so two-category images keep both (19 % instead of 16 %)
    "t57_simclr": ("simclr", dict()),
    "t58_supervised": ("supervised", dict()),
    "t59_moco": ("moco", dict()),
    "t60_byol": ("byol", dict()),
    # t61 on: the demo's ViT (vit_mini_patch8, 64-px views), supervised
    "t61_supervised_vit": ("supervised_vit", dict()),
    "t00_smoke": ("simclr", dict(steps=3, batch_size=16, augment=SWAP, eval_size=200, pool_size=200)),
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
    summary = pretrain(
        r,
        out / f"{args.trial}.pth",
        seed=args.seed,
        device="auto",
        log=out / f"{args.trial}.jsonl",
        cache_dir=out / "cache",
    )
    with open(out / "trials.jsonl", "a") as handle:
        handle.write(json.dumps({"trial": args.trial, **{k: v for k, v in summary.items() if k != "history"}}) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
