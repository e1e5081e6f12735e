"""Class specificity (the saliency-bias test): on images with two objects, do the two objects'
pseudo-classes get different maps, each pointing at its own object?

A class-insensitive map (plain saliency of "what is salient") gives both classes nearly the
same map: high correlation, and as many hits on the other object as on the explained one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from probe.devices import model_device
from probe.errors import ProbeValueError

from ._explain import ExplainFn, explain_in_batches, explainer
from ._tensors import check_mask_batch, nanmean, pearson_rows, spearman_rows
from .intervals import Estimate, Resampling, with_value
from .localization import POINTING_TOLERANCE, pointing_game


@dataclass(frozen=True)
class SpecificityResult:
    """Per-image results of the two-object test (``a``/``b`` = the two objects of each image)."""

    maps_a: torch.Tensor  # [N, H, W] map explaining object a's pseudo-class
    maps_b: torch.Tensor
    pointing_a: torch.Tensor  # [N] hit of map a on mask a (1/0, NaN for an empty mask)
    pointing_b: torch.Tensor
    other_a: torch.Tensor  # [N] hit of map a on mask b: pointing at the wrong object
    other_b: torch.Tensor
    pearson: torch.Tensor  # [N] correlation of map a and map b (lower is better)
    spearman: torch.Tensor

    def summary(self) -> dict[str, float | None]:
        """Means over images: hit rate on the explained object and on the other one, map correlations."""
        return {
            "pointing_explained": nanmean(torch.cat([self.pointing_a, self.pointing_b])),
            "pointing_other": nanmean(torch.cat([self.other_a, self.other_b])),
            "pearson": nanmean(self.pearson),
            "spearman": nanmean(self.spearman),
            "images": int(self.pearson.numel()),
        }

    def estimates(self, resampling: Resampling) -> dict[str, Estimate | None]:
        """:meth:`summary`'s means with 95 % intervals, the images resampled by ``resampling`` (both objects as one)."""
        means = self.summary()

        def both(a: torch.Tensor, b: torch.Tensor, key: str) -> Estimate | None:
            pair = torch.stack([a, b], dim=1).double()
            hits, counted = torch.nan_to_num(pair, nan=0.0).sum(dim=1), torch.isfinite(pair).sum(dim=1)
            return with_value(means[key], resampling.ratio(hits, counted))

        return {
            "pointing_explained": both(self.pointing_a, self.pointing_b, "pointing_explained"),
            "pointing_other": both(self.other_a, self.other_b, "pointing_other"),
            "pearson": with_value(means["pearson"], resampling.mean(self.pearson)),
            "spearman": with_value(means["spearman"], resampling.mean(self.spearman)),
        }


def class_specificity(
    model: nn.Module,
    images: torch.Tensor,
    targets_a: torch.Tensor | Sequence[int],
    targets_b: torch.Tensor | Sequence[int],
    masks_a: torch.Tensor,
    masks_b: torch.Tensor,
    *,
    explain_fn: ExplainFn | None = None,
    method: str = "agf",
    tolerance: float = POINTING_TOLERANCE,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> SpecificityResult:
    """Explain both objects' pseudo-classes on the same images and compare the two maps.

    ``explain_fn`` defaults to ``probe.explain`` with ``method``. Pointing game: the map of
    object a must point at mask a (``pointing_a``); ``other_a`` counts hits on mask b instead.
    Correlations are per image over all pixels (Pearson, and Spearman with tied ranks averaged).
    """
    explain_fn = explain_fn or explainer(method)
    targets_a = torch.as_tensor(targets_a, dtype=torch.long)
    targets_b = torch.as_tensor(targets_b, dtype=torch.long)
    if bool((targets_a == targets_b).any()):
        raise ProbeValueError("class_specificity needs two different pseudo-classes per image (targets_a == targets_b)")
    masks_a, masks_b = check_mask_batch(masks_a, "masks_a"), check_mask_batch(masks_b, "masks_b")
    expected = (images.shape[0], *images.shape[2:])
    for name, masks in (("masks_a", masks_a), ("masks_b", masks_b)):
        if tuple(masks.shape) != expected:
            raise ProbeValueError(f"{name} has shape {tuple(masks.shape)}, expected {expected} for these images")
    device = torch.device(device) if device is not None else model_device(model)
    maps_a = explain_in_batches(explain_fn, model, images, targets_a, batch_size=batch_size, device=device)
    maps_b = explain_in_batches(explain_fn, model, images, targets_b, batch_size=batch_size, device=device)
    masks_a, masks_b = masks_a.cpu(), masks_b.cpu()
    return SpecificityResult(
        maps_a=maps_a,
        maps_b=maps_b,
        pointing_a=pointing_game(maps_a, masks_a, tolerance),
        pointing_b=pointing_game(maps_b, masks_b, tolerance),
        other_a=pointing_game(maps_a, masks_b, tolerance),
        other_b=pointing_game(maps_b, masks_a, tolerance),
        pearson=pearson_rows(maps_a.flatten(1), maps_b.flatten(1)),
        spearman=spearman_rows(maps_a.flatten(1), maps_b.flatten(1)),
    )


@dataclass(frozen=True)
class TwoObjectPairs:
    """The usable two-object images and, for each, its two labels, pseudo-classes and masks."""

    indices: list[int]  # positions in the input list
    labels: list[tuple[str, str]]
    targets_a: torch.Tensor
    targets_b: torch.Tensor
    masks_a: torch.Tensor
    masks_b: torch.Tensor


def two_object_pairs(
    object_masks: Sequence[Mapping[str, torch.Tensor]], label_to_class: Mapping[str, int]
) -> TwoObjectPairs:
    """Turn per-image ``{label: mask}`` dicts into the inputs of :func:`class_specificity`.

    An image is used when it has exactly two labels, both mapped to a pseudo-class by
    ``label_to_class`` (e.g. each label's majority pseudo-class), and the two pseudo-classes
    differ; labels are taken in sorted order so the result is deterministic.
    """
    indices, labels, ta, tb, ma, mb = [], [], [], [], [], []
    for i, objects in enumerate(object_masks):
        if len(objects) != 2:
            continue
        first, second = sorted(objects)
        if first not in label_to_class or second not in label_to_class:
            continue
        if label_to_class[first] == label_to_class[second]:
            continue
        indices.append(i)
        labels.append((first, second))
        ta.append(int(label_to_class[first]))
        tb.append(int(label_to_class[second]))
        ma.append(torch.as_tensor(objects[first]) != 0)
        mb.append(torch.as_tensor(objects[second]) != 0)
    if not indices:
        raise ProbeValueError("no usable two-object image: each needs two labels that map to different pseudo-classes")
    return TwoObjectPairs(indices, labels, torch.tensor(ta), torch.tensor(tb), torch.stack(ma), torch.stack(mb))
