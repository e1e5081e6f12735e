"""Tiny recipes for the demo tests: a 32 px world, 16 px views, a 4-stage ResNet of widths 8-16."""

from __future__ import annotations

from probe.demo.augment import AugmentConfig
from probe.demo.pretrain import Recipe, recipe
from probe.demo.world import WorldConfig

TINY_ARCH = {"widths": (8, 8, 16, 16)}
TINY_WORLD = WorldConfig(image_size=32, instances=(2, 3), radius=(0.1, 0.16))
TINY_VIEWS = AugmentConfig(size=16, scale=(0.3, 0.8))


def tiny_recipe(method: str, **overrides) -> Recipe:
    fields = dict(
        steps=2,
        batch_size=16,
        world=TINY_WORLD,
        augment=TINY_VIEWS,
        arch_kwargs=TINY_ARCH,
        pool_size=48,
        eval_every=0,
        eval_size=0,
        save_every=0,
    )
    if method == "moco":
        fields["objective_kwargs"] = {"queue_size": 64, "dim": 16}
    return recipe(method, **{**fields, **overrides})
