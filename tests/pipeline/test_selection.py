"""Which images get explained: stratified evaluation subset, central members, label pairing, masks."""

from __future__ import annotations

import numpy as np
import torch

from backbones.preprocessing import Normalization
from probe.pipeline.images import MaskReader, seeded_subset, unnormalise
from probe.pipeline.selection import central_rows, evaluation_rows, label_to_class, two_object_rows
from unsupervised import ImageFolderData


def test_evaluation_rows_are_stratified_capped_seeded_and_skip_unusable_images():
    clusters = np.array([0] * 50 + [1] * 5 + [2] * 30)
    rows = evaluation_rows(clusters, 3, per_class=8, cap=100, seed=0)
    assert np.bincount(clusters[rows], minlength=3).tolist() == [8, 5, 8]
    first = clusters[rows[:9]]  # drawn in turns: every prefix is stratified
    assert np.bincount(first, minlength=3).tolist() == [3, 3, 3] and len(set(rows.tolist())) == len(rows)
    assert np.array_equal(rows, evaluation_rows(clusters, 3, per_class=8, cap=100, seed=0))
    assert not np.array_equal(rows, evaluation_rows(clusters, 3, per_class=8, cap=100, seed=1))
    capped = evaluation_rows(clusters, 3, per_class=8, cap=10, seed=0)
    assert np.bincount(clusters[capped], minlength=3).tolist() == [4, 3, 3]  # classes take turns
    odd = evaluation_rows(clusters, 3, per_class=8, cap=100, seed=0, usable=lambda row: row % 2 == 0)
    assert len(odd) == 8 + 3 + 8 and (odd % 2 == 0).all()  # cluster 1 (rows 50..54) has 3 even rows


def test_central_rows_are_nearest_to_their_centroid():
    features = np.array([[1, 0], [0.9, 0.1], [0.2, 0.8], [0, 1], [0.6, 0.4]], dtype=np.float32)
    clusters = np.array([0, 0, 1, 1, 0])
    centroids = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert central_rows(features, clusters, centroids, spherical=False, count=2) == [[0, 1], [3, 2]]
    scaled = features * np.array([[10], [1], [1], [5], [1]], dtype=np.float32)  # norms do not matter when spherical
    assert central_rows(scaled, clusters, centroids, spherical=True, count=2) == [[0, 1], [3, 2]]


def test_labels_map_to_the_pseudo_class_holding_most_of_their_images():
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    clusters = np.array([1, 1, 0, 0, 2, 2, 2, 1])
    assert label_to_class(truth, clusters, ["a", "b", "c"], 3) == {"a": 1, "b": 0, "c": 2}  # b: tie -> lowest id


def test_two_object_rows_scan_in_seeded_order_and_stop_when_enough():
    objects = {3: 2, 7: 2, 9: 2, 11: 1}
    seen = []

    def count(row):
        seen.append(row)
        return objects.get(row, 0)

    rows = two_object_rows(20, count, count=2, seed=0)
    assert len(rows) == 2 and set(rows) <= {3, 7, 9} and len(seen) < 20
    assert two_object_rows(20, lambda r: objects.get(r, 0), count=5, seed=0) == [3, 7, 9]
    assert len(two_object_rows(20, lambda r: objects.get(r, 0), count=5, seed=0, scan=4)) < 3


def test_mask_reader_names_label_values_after_the_class_folders(world):
    images, masks = world
    data = ImageFolderData(images, masks=masks)
    reader = MaskReader(data)
    two = data.rel_paths.index("circle/circle_016.png")  # a circle with a square beside it
    by_label = reader.by_label(two)
    assert sorted(by_label) == ["circle", "square"] and reader.objects(two) == 2
    assert reader.objects(data.rel_paths.index("circle/circle_000.png")) == 1
    union = reader.union([two], (64, 64))[0]
    assert torch.equal(union, by_label["circle"] | by_label["square"])
    # label images with integer values and no categories.json: value v is class folder v - 1
    (masks / "categories.json").rename(masks / "names.json")
    try:
        plain = MaskReader(ImageFolderData(images, masks=masks))
        assert sorted(plain.by_label(two)) == ["circle", "square"]
    finally:
        (masks / "names.json").rename(masks / "categories.json")


def test_seeded_subset_and_unnormalise(world):
    data = ImageFolderData(world[0])
    picked = seeded_subset(data, 10, seed=3)
    assert len(picked) == 10 and picked.rel_paths == sorted(picked.rel_paths)
    assert picked.rel_paths == seeded_subset(data, 10, seed=3).rel_paths != seeded_subset(data, 10, seed=4).rel_paths
    assert seeded_subset(data, None, seed=0) is data
    x = torch.rand(2, 3, 4, 4)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    normed = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    np.testing.assert_allclose(
        unnormalise(normed, normalization=Normalization(mean, std)), x.permute(0, 2, 3, 1).numpy(), atol=1e-6
    )
