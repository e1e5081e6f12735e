"""One call per (backbone, method): every map metric on a set of evaluated images, with the
backbone-level figures and the per-pseudo-class ones the report needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from probe.errors import ProbeValueError

from ._tensors import check_mask_batch, check_maps, nanmean, per_class_mean
from .faithfulness import STEPS, FaithfulnessResult, faithfulness
from .localization import (
    POINTING_TOLERANCE,
    SegmentationCounts,
    centre_pointing_game,
    mask_energy,
    mask_fraction,
    pointing_game,
    segmentation_counts,
)


@dataclass(frozen=True)
class MapEvaluation:
    """Per-image results of one method's maps on N images (localisation fields are None without masks)."""

    faithfulness: FaithfulnessResult
    pointing: torch.Tensor | None  # [N] 1/0, NaN where the image has no mask
    energy: torch.Tensor | None  # [N], NaN where undefined
    centre: torch.Tensor | None  # [N] centre-point baseline
    area: torch.Tensor | None  # [N] mask area share (a uniform map's energy)
    segmentation: SegmentationCounts | None  # over the images that have a mask

    def overall(self) -> dict[str, float | None]:
        """Backbone-level figures: means over images (pixel counts for the segmentation test)."""
        seg = self.segmentation.scores() if self.segmentation is not None else {}
        return {
            "positive_perturbation_auc": self.faithfulness.positive.auc,
            "negative_perturbation_auc": self.faithfulness.negative.auc,
            "pointing_game": nanmean(self.pointing) if self.pointing is not None else None,
            "mask_energy": nanmean(self.energy) if self.energy is not None else None,
            "centre_pointing_game": nanmean(self.centre) if self.centre is not None else None,
            "mask_fraction": nanmean(self.area) if self.area is not None else None,
            "miou": seg.get("miou"),
            "pixel_accuracy": seg.get("pixel_accuracy"),
            "average_precision": seg.get("average_precision"),
        }

    def per_class(self, classes: torch.Tensor | Sequence[int], k: int) -> list[dict[str, float | None]]:
        """The same figures within each pseudo-class 0..k-1 (``classes [N]``: the pseudo-class explained)."""
        columns = {
            "positive_perturbation_auc": self.faithfulness.positive.per_image_auc(),
            "negative_perturbation_auc": self.faithfulness.negative.per_image_auc(),
            "pointing_game": self.pointing,
            "mask_energy": self.energy,
            "centre_pointing_game": self.centre,
            "mask_fraction": self.area,
        }
        classes = torch.as_tensor(classes)
        means = {key: per_class_mean(v, classes, k) if v is not None else [None] * k for key, v in columns.items()}
        return [{key: means[key][c] for key in columns} for c in range(k)]


def evaluate_maps(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor | Sequence[int],
    *,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    masks: torch.Tensor | None = None,
    tolerance: float = POINTING_TOLERANCE,
    threshold_rule: str = "mean",
    fractions: Sequence[float] = STEPS,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    perturbation: FaithfulnessResult | None = None,
) -> MapEvaluation:
    """Faithfulness of ``maps`` for ``target`` on ``model``, and localisation on ``masks`` if given.

    An image without an object mask takes an all-False mask: it is left out of every
    localisation figure (and of the segmentation counts) but still counts for faithfulness.
    ``perturbation``: the curves of these maps when the caller already ran the perturbation test.
    """
    maps = check_maps(maps).cpu()
    if perturbation is not None and perturbation.positive.hits.shape[0] != maps.shape[0]:
        raise ProbeValueError(f"perturbation curves of {perturbation.positive.hits.shape[0]} images "
                              f"for {maps.shape[0]} maps")
    result = perturbation or faithfulness(model, images, maps, target, mean=mean, std=std, fractions=fractions,
                                          batch_size=batch_size, device=device)
    if masks is None:
        return MapEvaluation(result, None, None, None, None, None)
    masks = check_mask_batch(masks).cpu()
    has_object = masks.flatten(1).any(dim=1)
    columns: dict[str, list[torch.Tensor]] = {"pointing": [], "energy": [], "centre": [], "area": []}
    segmentation = SegmentationCounts()
    for start in range(0, maps.shape[0], batch_size):  # chunks keep the [N, H, W] temporaries small
        chunk = slice(start, start + batch_size)
        m, k, obj = maps[chunk], masks[chunk], has_object[chunk]
        columns["pointing"].append(pointing_game(m, k, tolerance))
        columns["energy"].append(mask_energy(m, k))
        columns["centre"].append(centre_pointing_game(k, tolerance))
        columns["area"].append(mask_fraction(k))
        if obj.any():
            segmentation = segmentation + segmentation_counts(m[obj], k[obj], rule=threshold_rule)
    joined = {key: torch.cat(parts) for key, parts in columns.items()}
    return MapEvaluation(result, segmentation=segmentation if segmentation.images else None, **joined)
