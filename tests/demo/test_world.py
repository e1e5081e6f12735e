"""The synthetic world: determinism, what each image holds, masks, and the image-folder layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from probe.demo.world import (
    BACKGROUNDS,
    RENDERER,
    SHAPES,
    WorldConfig,
    WorldManifest,
    generate,
    render,
    render_arrays,
    write_image_folder,
)
from probe.errors import ProbeValueError

CFG = WorldConfig()


def test_same_seed_same_bytes_and_different_seed_differs():
    a = render_arrays(CFG, 12, seed=7)
    b = render_arrays(CFG, 12, seed=7)
    c = render_arrays(CFG, 12, seed=8)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes()
    assert a["images"].tobytes() != c["images"].tobytes()


def test_image_depends_only_on_seed_and_index():
    whole = list(generate(CFG, 6, seed=3))
    tail = list(generate(CFG, 2, seed=3, start=4))
    assert whole[4].image.tobytes() == tail[0].image.tobytes()
    assert whole[5].mask.tobytes() == tail[1].mask.tobytes()


def test_samples_hold_consistent_categories_masks_and_instances():
    names = CFG.class_names
    two = 0
    samples = list(generate(CFG, 300, seed=11))
    for s in samples:
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == (64, 64) and s.mask.dtype == np.uint8
        values = set(np.unique(s.mask).tolist()) - {0}
        assert values == {names.index(c) + 1 for c in s.categories}
        for c in s.categories:
            assert s.areas[c] == int((s.mask == names.index(c) + 1).sum()) > 0
            assert 1 <= s.instances[c] <= CFG.instances[1]
        assert list(s.categories) == sorted(s.categories, key=lambda c: (-s.areas[c], c))
        assert len(set(s.categories)) == len(s.categories) <= 2
        two += len(s.categories) == 2
    # a fifth of the images hold two categories: binomial(300, 0.2) lies in [40, 80] with p > 0.999
    assert 40 <= two <= 80
    primaries = {s.category for s in samples}
    assert primaries == set(CFG.categories)


def test_background_kind_is_recorded_per_image():
    samples = list(generate(CFG, 40, seed=5))
    arrays = render_arrays(CFG, 40, seed=5)
    assert arrays["backgrounds"].tolist() == [BACKGROUNDS.index(s.background) for s in samples]
    assert len(set(arrays["backgrounds"].tolist())) == len(BACKGROUNDS)  # 40 draws of 4 kinds: all seen
    # a world restricted to one pattern records that pattern for every image
    only = render_arrays(WorldConfig(backgrounds=("checker",)), 10, seed=5)
    assert set(only["backgrounds"].tolist()) == {BACKGROUNDS.index("checker")}


@pytest.mark.parametrize("second", [(1, 1), (2, 5)])
def test_second_instances_bounds_the_second_category(second):
    # A two-category image draws its second category with ``second_instances`` instances: with
    # (1, 1) the image label is never a near tie, one category is a single instance.
    cfg = WorldConfig(instances=(3, 5), radius=(0.06, 0.1), second_instances=second)
    twos = [s for s in generate(cfg, 200, seed=4) if len(s.categories) == 2]
    assert len(twos) >= 20
    fewest = [min(s.instances.values()) for s in twos]
    if second == (1, 1):
        assert all(f == 1 for f in fewest)
        assert sum(s.instances[s.category] >= 3 for s in twos) >= 0.9 * len(twos)  # the primary is the many
    else:
        assert sum(f >= 2 for f in fewest) >= 0.8 * len(twos)
    with pytest.raises(ProbeValueError, match="second_instances"):
        WorldConfig(second_instances=(0, 1))


@pytest.mark.parametrize("instances", [(2, 4), (4, 4)])
def test_crowded_images_drop_extra_instances_never_a_category(instances):
    # Two big categories per image: extra instances that find no room are dropped, but each
    # category's first instance is placed first and shrinks until it fits.
    cfg = WorldConfig(two_category_fraction=1.0, instances=instances, radius=(0.17, 0.2))
    samples = list(generate(cfg, 60, seed=9))
    assert all(len(s.categories) == 2 for s in samples)
    assert sum(sum(s.instances.values()) < instances[0] + 1 for s in samples) >= 10  # instances were dropped


def _erode(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[1:] &= m[:-1]
    out[:-1] &= m[1:]
    out[:, 1:] &= m[:, :-1]
    out[:, :-1] &= m[:, 1:]
    return out


@pytest.mark.parametrize("regions", [(1, 1), (2, 4)])
@pytest.mark.parametrize("index", range(6))
def test_masks_cover_the_drawn_objects(index, regions):
    # Without noise, background luma stays inside a band and object luma lies min_contrast
    # outside it: mask interiors must be object-coloured and pixels away from masks background.
    cfg = WorldConfig(noise=(0.0, 0.0), background_regions=regions)
    s = render(cfg, seed=5, index=index)
    luma = s.image.astype(float) @ np.array([0.299, 0.587, 0.114]) / 255
    obj = s.mask > 0
    far_bg = _erode(_erode(~obj))
    lo, hi = luma[far_bg].min(), luma[far_bg].max()
    assert hi - lo <= cfg.background_band + 0.01
    inner = luma[_erode(_erode(obj))]  # two pixels in: star tips are anti-aliased one pixel deep
    assert inner.size > 0
    assert np.all((inner <= lo - cfg.min_contrast + 0.01) | (inner >= hi + cfg.min_contrast - 0.01))


def test_config_rejects_bad_values_with_the_field_name():
    with pytest.raises(ProbeValueError, match="categories"):
        WorldConfig(categories=("disc", "hexagon"))
    with pytest.raises(ProbeValueError, match="two_category_fraction"):
        WorldConfig(two_category_fraction=1.5)
    with pytest.raises(ProbeValueError, match="backgrounds"):
        WorldConfig(backgrounds=("plaid",))
    with pytest.raises(ProbeValueError, match="background_regions"):
        WorldConfig(background_regions=(0, 2))
    assert set(CFG.categories) <= set(SHAPES) and len(CFG.categories) >= 6


def test_write_image_folder_layout_and_manifest(tmp_path):
    root = tmp_path / "world"
    manifest = write_image_folder(root, 20, seed=2, progress=False)
    names = CFG.class_names
    assert sorted(p.name for p in (root / "images").iterdir()) == names
    data = json.loads((root / "world.json").read_text())
    assert data["seed"] == 2 and data["n"] == 20 and data["class_names"] == names
    assert data["mask_values"] == {n: i + 1 for i, n in enumerate(names)}
    assert len(data["images"]) == 20 == len(list((root / "images").rglob("*.png")))
    samples = list(generate(CFG, 20, seed=2))
    for record, sample in zip(data["images"], samples):
        folder = record["image"].split("/")[1]
        assert folder == sample.category == record["categories"][0]
        assert record["mask"] == record["image"].replace("images/", "masks/", 1)
        assert np.array_equal(np.asarray(Image.open(root / record["image"])), sample.image)
        assert np.array_equal(np.asarray(Image.open(root / record["mask"])), sample.mask)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # the same world is reused; a different one is refused
    again = write_image_folder(root, 20, seed=2, progress=False)
    assert again.records == manifest.records
    with pytest.raises(ProbeValueError, match="different world"):
        write_image_folder(root, 20, seed=3, progress=False)
    assert WorldManifest.read(root).config == CFG
    # a world drawn by an older renderer is refused too: the same config and seed now give other pixels
    data["renderer"] = RENDERER - 1
    (root / "world.json").write_text(json.dumps(data))
    with pytest.raises(ProbeValueError, match="renderer"):
        write_image_folder(root, 20, seed=2, progress=False)
