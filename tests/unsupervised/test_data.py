"""Image folders: layouts, skipped files, masks (mirror, size mismatch, missing, per category, alignment)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from tests.support.unsup_helpers import make_folder
from unsupervised import DataError, ImageFolderData, extract_features


def test_imagefolder_layout_labels_and_order(labelled_folder):
    data = ImageFolderData(labelled_folder)
    assert data.layout == "imagefolder" and data.class_names == ["apple", "banana", "cherry"]
    assert len(data) == 15 and data.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert data.rel_paths[0] == "apple/img000.png" and data.skipped == []
    image, label = data[7]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 1


def test_flat_layout_is_unlabelled(tmp_path):
    data = ImageFolderData(make_folder(tmp_path / "flat", None, flat_count=4))
    assert data.layout == "flat" and data.labels is None and data.class_names == [] and len(data) == 4
    assert data[0][1] == -1


def test_transform_is_applied(labelled_folder):
    data = ImageFolderData(labelled_folder, transform=T.Compose([T.Resize((20, 30)), T.ToTensor()]))
    image, _ = data[0]
    assert image.shape == (3, 20, 30)


def test_bad_files_are_skipped_and_listed(labelled_folder):
    (labelled_folder / "apple" / "zero.jpg").write_bytes(b"")
    (labelled_folder / "banana" / "notes.txt").write_text("hello")
    (labelled_folder / "banana" / "fake.png").write_text("not a png")
    (labelled_folder / "stray.png").write_bytes((labelled_folder / "apple" / "img000.png").read_bytes())
    (labelled_folder / ".hidden.png").write_bytes(b"")
    data = ImageFolderData(labelled_folder)  # names and sizes only: fake.png is found when decoded
    assert len(data) == 16 and "banana/fake.png" in data.rel_paths
    reasons = {p.split("/")[-1]: why for p, why in data.skipped}
    assert set(reasons) == {"zero.jpg", "notes.txt", "stray.png"}
    assert "empty" in reasons["zero.jpg"] and "extension" in reasons["notes.txt"]
    assert "class folder" in reasons["stray.png"]
    checked = ImageFolderData(labelled_folder, check_headers=True)
    assert len(checked) == 15 and checked.records[0].width is not None
    reasons = {p.split("/")[-1]: why for p, why in checked.skipped}
    assert set(reasons) == {"zero.jpg", "notes.txt", "fake.png", "stray.png"} and "not an image" in reasons["fake.png"]


def test_empty_or_unusable_folder_is_an_error(backbone, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no usable images"):
        ImageFolderData(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"xx")
    (tmp_path / "broken" / "b.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"no usable images.*a\.jpg \(not an image"):
        ImageFolderData(tmp_path / "broken", check_headers=True)
    with pytest.raises(DataError, match=r"no readable images.*all 1 failed to decode: a\.jpg \(not an image"):
        extract_features(backbone, ImageFolderData(tmp_path / "broken"))
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderData(tmp_path / "missing")
    with pytest.raises(DataError, match="unknown layout"):
        ImageFolderData(tmp_path / "broken", layout="tree")


def test_subset_and_fingerprint(labelled_folder):
    data = ImageFolderData(labelled_folder)
    part = data.subset([14, 0])
    assert part.rel_paths == ["cherry/img004.png", "apple/img000.png"] and part.labels.tolist() == [2, 0]
    assert len(data) == 15  # the original is untouched
    rel, size, mtime = data.fingerprint()[0]
    assert rel == "apple/img000.png" and size == (labelled_folder / rel).stat().st_size and mtime > 0


def _object_image(size=(60, 40), box=(10, 5, 30, 25)):
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[box[1] : box[3], box[0] : box[2]] = 255
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[box[1] : box[3], box[0] : box[2]] = 255
    return Image.fromarray(pixels), mask


def test_masks_mirror_mismatch_and_missing(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    (images / "a").mkdir(parents=True)
    (masks / "a").mkdir(parents=True)
    image, mask = _object_image(box=(10, 6, 30, 26))  # even edges survive halving and doubling exactly
    image.save(images / "a" / "same.jpg", quality=95)
    Image.fromarray(mask).save(masks / "a" / "same.png")
    image.save(images / "a" / "small.jpg", quality=95)
    Image.fromarray(mask).resize((30, 20), Image.Resampling.NEAREST).save(masks / "a" / "small.png")
    image.save(images / "a" / "nomask.jpg", quality=95)
    data = ImageFolderData(images, masks=masks)
    issues = {p.split("/")[-1]: why for p, why in data.mask_issues}
    assert set(issues) == {"small.jpg", "nomask.jpg"}
    assert "30x20" in issues["small.jpg"] and "resized" in issues["small.jpg"] and "no mask" in issues["nomask.jpg"]
    order = data.rel_paths
    same, small, missing = (order.index(f"a/{n}.jpg") for n in ("same", "small", "nomask"))
    expected = torch.from_numpy(mask > 0)
    assert torch.equal(data.mask(same), expected)
    assert torch.equal(data.mask(small), expected)  # upsampled by 2 with nearest neighbour: exact here
    assert data.mask(missing) is None and data.masks_by_label(missing) is None


def test_mask_follows_the_transform_geometry(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    image, mask = _object_image(size=(90, 60), box=(5, 10, 50, 40))
    image.save(images / "x.png")
    Image.fromarray(mask).save(masks / "x.png")
    geometry = T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    data = ImageFolderData(images, masks=masks)
    aligned = data.mask(0, geometry)
    pixels = data.load_image(0).convert("L")
    expected = T.Compose([T.Resize(36), T.CenterCrop(32), T.PILToTensor()])(pixels)[0] > 127
    assert aligned.shape == (32, 32) and aligned.dtype == torch.bool
    assert (aligned == expected).float().mean() > 0.97  # equal up to bilinear-vs-nearest edge pixels
    assert ImageFolderData(images, masks=masks, transform=geometry).mask(0).shape == (32, 32)
    with pytest.raises(DataError, match="RandomResizedCrop"):
        data.mask(0, T.Compose([T.RandomResizedCrop(32), T.ToTensor()]))


def test_label_image_and_per_category_masks(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    Image.new("RGB", (8, 4)).save(images / "label.png")
    Image.new("RGB", (8, 4)).save(images / "parts.v2.png")  # a dot in the stem is allowed
    values = np.zeros((4, 8), np.uint8)
    values[:, :2], values[:, 6:] = 1, 2
    Image.fromarray(values).save(masks / "label.png")
    circle, square = np.zeros((4, 8), np.uint8), np.zeros((4, 8), np.uint8)
    circle[0, 0], square[3, 7] = 255, 255
    Image.fromarray(circle).save(masks / "parts.v2.circle.png")
    Image.fromarray(square).save(masks / "parts.v2.square.png")
    data = ImageFolderData(images, masks=masks)
    label, parts = data.rel_paths.index("label.png"), data.rel_paths.index("parts.v2.png")
    by_value = data.masks_by_label(label)
    assert sorted(by_value) == [1, 2] and by_value[1][:, :2].all() and by_value[1].sum() == 8
    assert int(data.mask(label).sum()) == 16
    by_name = data.masks_by_label(parts)
    assert sorted(by_name) == ["circle", "square"] and by_name["circle"][0, 0] and by_name["circle"].sum() == 1
    assert int(data.mask(parts).sum()) == 2 and data.mask_issues == []
    (masks / "categories.json").write_text(json.dumps({"1": "left", "2": "right"}))
    named = ImageFolderData(images, masks=masks).masks_by_label(label)
    assert sorted(named) == ["left", "right"] and torch.equal(named["left"], by_value[1])
    (masks / "categories.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="categories.json"):
        ImageFolderData(images, masks=masks)


def test_masks_inside_the_image_folder_are_not_images(tmp_path):
    root = make_folder(tmp_path / "data", None, flat_count=2)
    (root / "masks").mkdir()
    Image.new("L", (4, 4)).save(root / "masks" / "img000.png")
    data = ImageFolderData(root, masks=root / "masks")
    assert data.layout == "flat" and len(data) == 2
