"""Background-swapped views keep every object pixel and take everything else from a fresh background."""

from __future__ import annotations

import numpy as np
import torch

from probe.demo.augment import swap_backgrounds
from probe.demo.world import WorldConfig, render_arrays, render_backgrounds


def test_swapped_views_keep_the_objects_and_replace_the_background():
    cfg = WorldConfig()
    arrays = render_arrays(cfg, 6, seed=4)
    images = torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2)
    masks = torch.from_numpy(arrays["masks"])
    fresh = torch.from_numpy(render_backgrounds(cfg, 3, seed=4)).permute(0, 3, 1, 2)
    swapped = swap_backgrounds(images, masks, fresh, 1.0, torch.Generator().manual_seed(0))
    objects = (masks > 0).unsqueeze(1).expand_as(images)
    assert torch.equal(swapped[objects], images[objects])
    # each image's background pixels are exactly one of the fresh backgrounds' pixels there
    for view, mask, original in zip(swapped, objects, images):
        assert any(torch.equal(view[~mask], bg[~mask]) for bg in fresh)
        assert not torch.equal(view[~mask], original[~mask])
    untouched = swap_backgrounds(images, masks, fresh, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(untouched, images)


def test_backgrounds_are_seeded_and_sized_like_the_world():
    cfg = WorldConfig()
    a, b = render_backgrounds(cfg, 2, seed=1), render_backgrounds(cfg, 2, seed=1)
    assert a.shape == (2, cfg.image_size, cfg.image_size, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, render_backgrounds(cfg, 2, seed=2))
