"""Localisation of relevance on object masks: segmentation test, pointing game, mask energy.

Every function takes maps ``[N, H, W]`` (signed relevance, any scale) and binary object masks
``[N, H, W]`` at the same resolution, works on the maps' device, and returns per-image values
(NaN where a value is undefined, e.g. an empty mask) or dataset-level counts that add up over
batches. Exact definitions are in ``docs/EVALUATION.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probe.errors import ProbeValueError

from ._tensors import check_maps, check_mask_batch, check_masks

#: Pointing-game tolerance in pixels of the model's input: a hit needs a distance below it (TorchRay: d < 15).
POINTING_TOLERANCE = 15
#: How a map is cut into object / background for the segmentation test (one rule for every method).
THRESHOLD_RULES = ("mean", "zero")


def binarize(maps: torch.Tensor, rule: str = "mean") -> torch.Tensor:
    """Object prediction ``[N, H, W]`` bool: ``map > mean(map)`` per image (``"mean"``), or ``map > 0`` (``"zero"``).

    ``"mean"`` is the default for every method: it equals the published baselines' "subtract
    the mean, threshold at 0" and Chefer et al.'s min-max-then-mean threshold, and it makes
    the test invariant to the map's offset and positive scale. ``"zero"`` reproduces the
    published AGF row (thr = 0 on the signed map).
    """
    maps = check_maps(maps)
    if rule == "mean":
        return maps > maps.mean(dim=(1, 2), keepdim=True)
    if rule == "zero":
        return maps > 0
    raise ProbeValueError(f"unknown threshold rule {rule!r}; valid: {', '.join(THRESHOLD_RULES)}")


def average_precision(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Average precision of each continuous map ranking its mask's pixels, ``[N]`` float64.

    AP = Σ_n (R_n − R_{n−1}) · P_n over the distinct map values taken as thresholds in
    descending order (scikit-learn's ``average_precision_score``, ties grouped). NaN where
    the mask has no object pixel.
    """
    maps = check_maps(maps)
    masks = check_masks(masks, maps)
    n = maps.shape[0]
    scores = maps.reshape(n, -1)
    labels = masks.reshape(n, -1)
    values, order = torch.sort(scores, dim=1, descending=True, stable=True)
    sorted_labels = torch.gather(labels, 1, order).double()
    true_pos = torch.cumsum(sorted_labels, dim=1)
    seen = torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=torch.float64)
    precision = true_pos / seen
    index = torch.arange(scores.shape[1], device=scores.device).expand(n, -1)
    group_end = torch.ones_like(values, dtype=torch.bool)
    group_end[:, :-1] = values[:, :-1] != values[:, 1:]
    end_of_group = torch.where(group_end, index, torch.full_like(index, scores.shape[1]))
    end_of_group = torch.flip(torch.cummin(torch.flip(end_of_group, [1]), dim=1).values, [1])
    precision_at_threshold = torch.gather(precision, 1, end_of_group)
    positives = sorted_labels.sum(dim=1)
    ap = (sorted_labels * precision_at_threshold).sum(dim=1) / positives.clamp(min=1)
    return torch.where(positives > 0, ap, torch.full_like(ap, float("nan")))


def paper_binary_map(pixel_accuracy: torch.Tensor) -> torch.Tensor:
    """The published "mAP" per image: a² + (1 − a)/2 for a binarised map of pixel accuracy a.

    The AGF and Chefer scripts feed the 2-channel *binary* prediction to
    ``average_precision_score``; with 0/1 scores that AP reduces exactly to this formula.
    It is reported for comparison with the papers' tables; :func:`average_precision` is the
    real ranking AP of the continuous map.
    """
    a = torch.as_tensor(pixel_accuracy, dtype=torch.float64)
    return a * a + (1 - a) / 2


@dataclass(frozen=True)
class SegmentationCounts:
    """Additive counts of the segmentation test; add the counts of batches, then read the scores.

    Pixel accuracy and IoU are accumulated over all pixels of the dataset (as the published
    scripts do); AP and the paper's binary "mAP" are averaged over images.
    """

    correct: int = 0
    pixels: int = 0
    intersection: tuple[int, int] = (0, 0)  # (background, object)
    union: tuple[int, int] = (0, 0)
    ap_sum: float = 0.0
    ap_images: int = 0
    binary_map_sum: float = 0.0
    images: int = 0

    def __add__(self, other: SegmentationCounts) -> SegmentationCounts:
        return SegmentationCounts(
            correct=self.correct + other.correct,
            pixels=self.pixels + other.pixels,
            intersection=(self.intersection[0] + other.intersection[0], self.intersection[1] + other.intersection[1]),
            union=(self.union[0] + other.union[0], self.union[1] + other.union[1]),
            ap_sum=self.ap_sum + other.ap_sum,
            ap_images=self.ap_images + other.ap_images,
            binary_map_sum=self.binary_map_sum + other.binary_map_sum,
            images=self.images + other.images,
        )

    @property
    def pixel_accuracy(self) -> float | None:
        """Σ correctly labelled pixels / Σ pixels (object and background alike)."""
        return self.correct / self.pixels if self.pixels else None

    @property
    def miou(self) -> float | None:
        """Mean over {background, object} of Σ intersection / Σ union (classes with an empty union left out)."""
        ious = [i / u for i, u in zip(self.intersection, self.union) if u > 0]
        return sum(ious) / len(ious) if ious else None

    @property
    def average_precision(self) -> float | None:
        """Mean real AP over the images whose mask has an object pixel."""
        return self.ap_sum / self.ap_images if self.ap_images else None

    @property
    def paper_binary_map(self) -> float | None:
        """Mean over images of the published binary "mAP" (a² + (1 − a)/2)."""
        return self.binary_map_sum / self.images if self.images else None

    def scores(self) -> dict[str, float | None]:
        """The four dataset-level scores by name."""
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "miou": self.miou,
            "average_precision": self.average_precision,
            "paper_binary_map": self.paper_binary_map,
        }


@dataclass(frozen=True)
class SegmentationRows:
    """The segmentation test's counts per image ``[N]``; :meth:`counts` adds them up (the dataset-level test)."""

    correct: torch.Tensor  # correctly labelled pixels, int64
    pixels: int  # pixels per image
    intersection: tuple[torch.Tensor, torch.Tensor]  # (background, object), int64
    union: tuple[torch.Tensor, torch.Tensor]
    ap: torch.Tensor  # real AP, NaN without an object pixel
    binary_map: torch.Tensor  # the papers' binary "mAP" per image

    def counts(self) -> SegmentationCounts:
        valid = torch.isfinite(self.ap)
        return SegmentationCounts(
            correct=int(self.correct.sum()),
            pixels=self.pixels * self.correct.numel(),
            intersection=(int(self.intersection[0].sum()), int(self.intersection[1].sum())),
            union=(int(self.union[0].sum()), int(self.union[1].sum())),
            ap_sum=float(self.ap[valid].sum()),
            ap_images=int(valid.sum()),
            binary_map_sum=float(self.binary_map.sum()),
            images=self.correct.numel(),
        )


def segmentation_rows(maps: torch.Tensor, masks: torch.Tensor, *, rule: str = "mean") -> SegmentationRows:
    """Per-image counts of the segmentation test: binarise with ``rule`` (:func:`binarize`), compare to ``masks``."""
    maps = check_maps(maps)
    masks = check_masks(masks, maps)
    pred = binarize(maps, rule)

    def per_image(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(dim=1).cpu()

    correct = per_image(pred == masks)
    pixels = masks[0].numel() if masks.shape[0] else 0
    return SegmentationRows(
        correct=correct,
        pixels=pixels,
        intersection=(per_image(~pred & ~masks), per_image(pred & masks)),
        union=(per_image(~pred | ~masks), per_image(pred | masks)),
        ap=average_precision(maps, masks).cpu(),
        binary_map=paper_binary_map(correct.double() / max(pixels, 1)),
    )


def segmentation_counts(maps: torch.Tensor, masks: torch.Tensor, *, rule: str = "mean") -> SegmentationCounts:
    """Segmentation-test counts of one batch (the sums of :func:`segmentation_rows`); add batches with ``+``."""
    return segmentation_rows(maps, masks, rule=rule).counts()


def _hits_within(points: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """1 where a mask pixel lies closer than ``tolerance`` (Euclidean) to the point ``(y, x)``, else 0; NaN: empty mask.

    Strict, as TorchRay's protocol: a pixel exactly ``tolerance`` away is a miss. With ``tolerance`` 0 only
    the point itself counts.
    """
    n, h, w = masks.shape
    ys = torch.arange(h, device=masks.device, dtype=torch.float64).reshape(1, h, 1)
    xs = torch.arange(w, device=masks.device, dtype=torch.float64).reshape(1, 1, w)
    py = points[:, 0].double().reshape(n, 1, 1)
    px = points[:, 1].double().reshape(n, 1, 1)
    squared = (ys - py) ** 2 + (xs - px) ** 2
    near = squared < float(tolerance) ** 2 if tolerance > 0 else squared == 0
    hit = (near & masks).flatten(1).any(dim=1).double()
    empty = ~masks.flatten(1).any(dim=1)
    return torch.where(empty, torch.full_like(hit, float("nan")), hit)


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: float = POINTING_TOLERANCE) -> torch.Tensor:
    """Per image: 1 if the map's maximum lies closer than ``tolerance`` px to an object pixel, else 0.

    NaN where the mask is empty, or where the map is constant (it points nowhere: see
    :func:`constant_maps`). Among several equal maxima of a non-constant map the first in
    row-major order counts.
    """
    maps = check_maps(maps)
    masks = check_masks(masks, maps)
    if tolerance < 0:
        raise ProbeValueError(f"pointing-game tolerance must be >= 0, got {tolerance}")
    flat_index = maps.flatten(1).argmax(dim=1)
    points = torch.stack([flat_index // maps.shape[2], flat_index % maps.shape[2]], dim=1)
    hits = _hits_within(points, masks, tolerance)
    return torch.where(constant_maps(maps), torch.full_like(hits, float("nan")), hits)


def constant_maps(maps: torch.Tensor) -> torch.Tensor:
    """Bool ``[N]``: maps with one value everywhere (e.g. all zero), which have no maximum to point with."""
    flat = check_maps(maps).flatten(1)
    return flat.amax(dim=1) == flat.amin(dim=1)


def centre_pointing_game(masks: torch.Tensor, tolerance: float = POINTING_TOLERANCE) -> torch.Tensor:
    """The pointing game's trivial baseline: always point at the image centre ((H−1)/2, (W−1)/2)."""
    masks = check_mask_batch(masks)
    n, h, w = masks.shape
    centre = torch.tensor([(h - 1) / 2, (w - 1) / 2], device=masks.device, dtype=torch.float64).expand(n, 2)
    return _hits_within(centre, masks, tolerance)


def mask_energy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of the positive relevance inside the mask: Σ_mask max(m, 0) / Σ max(m, 0), ``[N]`` float64.

    (Quantus' "relevance mass accuracy" on the positive part.) NaN where the map has no
    positive relevance or the mask is empty. Compare with :func:`mask_fraction`, the score
    of a uniform map.
    """
    maps = check_maps(maps)
    masks = check_masks(masks, maps)
    positive = maps.clamp(min=0).double().flatten(1)
    inside = (positive * masks.flatten(1)).sum(dim=1)
    total = positive.sum(dim=1)
    energy = inside / torch.where(total > 0, total, torch.ones_like(total))
    undefined = (total <= 0) | ~masks.flatten(1).any(dim=1)
    return torch.where(undefined, torch.full_like(energy, float("nan")), energy)


def mask_fraction(masks: torch.Tensor) -> torch.Tensor:
    """Area share of the mask ``[N]``: the mask energy a uniform map would get (NaN for empty masks)."""
    masks = check_mask_batch(masks)
    share = masks.flatten(1).double().mean(dim=1)
    return torch.where(share > 0, share, torch.full_like(share, float("nan")))
