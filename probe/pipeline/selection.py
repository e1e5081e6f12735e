"""Which images are explained: the evaluation subset, the cards' central members, the two-object images.

Every choice is seeded and depends only on the pseudo-classes and the data, so the same run
explains the same images. Rules (docs/PIPELINE.md):

- evaluation subset: pseudo-classes take turns (round robin over a seeded shuffle of each
  class's images) until each has ``per_class`` images or ``cap`` images are taken in all;
  images with two or more labelled objects are left out (their mask would mix objects). The
  rows come in the order they were drawn, so every prefix is stratified too: the evaluation
  takes them in rounds from the front and stops once its figures are precise enough;
- card members: the images nearest to their pseudo-class's centroid in the clustering space;
- two-object pairing: each label goes to the pseudo-class holding most images of that label;
- side by side (runs with several backbones): one single-object image per folder label, the first
  of a seeded shuffle, in label order (without labels, the first images of the shuffle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: How many images are scanned (masks read) looking for two-object images.
SPECIFICITY_SCAN = 2000


def evaluation_rows(
    clusters: np.ndarray, k: int, *, per_class: int, cap: int, seed: int, usable: Callable[[int], bool] | None = None
) -> np.ndarray:
    """Feature rows of the seeded, pseudo-class-stratified evaluation subset, in the order drawn (classes in turn)."""
    rng = np.random.default_rng([seed, 0xE7A1])
    order = rng.permutation(len(clusters))
    queues = [order[clusters[order] == c].tolist() for c in range(k)]
    taken: list[list[int]] = [[] for _ in range(k)]
    drawn: list[int] = []
    total = 0
    while total < cap:
        progressed = False
        for c in range(k):
            while queues[c] and len(taken[c]) < per_class and total < cap:
                row = queues[c].pop(0)
                if usable is None or usable(row):
                    taken[c].append(row)
                    drawn.append(row)
                    total += 1
                    progressed = True
                    break
        if not progressed:
            break
    return np.array(drawn, dtype=np.int64)


def central_rows(
    features: np.ndarray, clusters: np.ndarray, centroids: np.ndarray, *, spherical: bool, count: int
) -> list[list[int]]:
    """For each pseudo-class, its ``count`` rows nearest to the centroid (cosine when spherical), nearest first."""
    x = np.asarray(features, dtype=np.float32)
    if spherical:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float32).tiny)
    out = []
    for c in range(centroids.shape[0]):
        rows = np.flatnonzero(clusters == c)
        distance = ((x[rows] - centroids[c]) ** 2).sum(axis=1)
        out.append(rows[np.argsort(distance, kind="stable")[:count]].tolist())
    return out


def label_to_class(truth: np.ndarray, clusters: np.ndarray, class_names: Sequence[str], k: int) -> dict[str, int]:
    """Each true label's pseudo-class: the one holding most of its images (lowest id on ties)."""
    table = np.zeros((len(class_names), k), dtype=np.int64)
    np.add.at(table, (truth, clusters), 1)
    return {name: int(table[j].argmax()) for j, name in enumerate(class_names) if table[j].sum() > 0}


def two_object_rows(
    n: int, objects: Callable[[int], int], *, count: int, seed: int, scan: int = SPECIFICITY_SCAN
) -> list[int]:
    """Up to ``count`` rows (seeded order, at most ``scan`` looked at) whose image holds exactly two objects."""
    if count <= 0:
        return []
    rng = np.random.default_rng([seed, 0x2081])
    found = []
    for row in rng.permutation(n)[:scan].tolist():
        if objects(row) == 2:
            found.append(row)
            if len(found) == count:
                break
    return sorted(found)


def side_by_side_rows(
    n: int, labels: np.ndarray | None, *, count: int, seed: int, usable: Callable[[int], bool] | None = None
) -> list[int]:
    """Up to ``count`` rows for the side-by-side maps: one usable row per label in label order (each the first of
    a seeded shuffle), or without labels the first usable rows of that shuffle."""
    order = np.random.default_rng([seed, 0x51DE]).permutation(n).tolist()
    chosen: dict[int, int] = {}
    for row in order:
        key = int(labels[row]) if labels is not None else len(chosen)
        if key not in chosen and (usable is None or usable(row)):
            chosen[key] = row
            if labels is None and len(chosen) == count:
                break
    return [chosen[key] for key in sorted(chosen)][:count]
