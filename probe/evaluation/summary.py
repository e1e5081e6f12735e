"""One call per (backbone, method): every map metric on a set of evaluated images, with the
backbone-level figures and the per-pseudo-class ones the report needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from backbones.preprocessing import Normalization
from probe.errors import ProbeValueError

from ._tensors import check_maps, check_mask_batch, nanmean, per_class_mean
from .faithfulness import STEPS, FaithfulnessResult, faithfulness
from .intervals import MIN_CLASS_VALUES, MIN_VALUES, Estimate, Resampling, estimate, with_value
from .localization import (
    POINTING_TOLERANCE,
    SegmentationCounts,
    SegmentationRows,
    centre_pointing_game,
    mask_energy,
    mask_fraction,
    pointing_game,
    segmentation_rows,
)


@dataclass(frozen=True)
class MapEvaluation:
    """Per-image results of one method's maps on N images (localisation fields are None without masks)."""

    faithfulness: FaithfulnessResult
    pointing: torch.Tensor | None  # [N] 1/0, NaN where the image has no mask or the map is constant
    energy: torch.Tensor | None  # [N], NaN where undefined
    centre: torch.Tensor | None  # [N] centre-point baseline
    area: torch.Tensor | None  # [N] mask area share (a uniform map's energy)
    segmentation_rows: SegmentationRows | None  # per image that has an object (``has_object``)
    has_object: torch.Tensor | None  # [N] bool

    @property
    def segmentation(self) -> SegmentationCounts | None:
        """The segmentation test over the images that have a mask (pixel counts added up)."""
        return self.segmentation_rows.counts() if self.segmentation_rows is not None else None

    def _columns(self) -> dict[str, torch.Tensor | None]:
        """The per-image figures whose means are the backbone's and each pseudo-class's figures."""
        return {
            "positive_perturbation_auc": self.faithfulness.positive.per_image_auc(),
            "negative_perturbation_auc": self.faithfulness.negative.per_image_auc(),
            "pointing_game": self.pointing,
            "mask_energy": self.energy,
            "centre_pointing_game": self.centre,
            "mask_fraction": self.area,
        }

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
        columns = self._columns()
        classes = torch.as_tensor(classes)
        means = {key: per_class_mean(v, classes, k) if v is not None else [None] * k for key, v in columns.items()}
        return [{key: means[key][c] for key in columns} for c in range(k)]

    def estimates(self, resampling: Resampling) -> dict[str, Estimate | None]:
        """:meth:`overall` with 95 % intervals, every figure on the replicates of ``resampling`` (over the N images).

        Figures of the same images share replicates, so their differences are paired
        (:func:`~probe.evaluation.intervals.difference`).
        """
        figures = self.overall()
        out = {
            key: with_value(figures[key], resampling.mean(column) if column is not None else None)
            for key, column in self._columns().items()
        }
        out.update(self._segmentation_estimates(resampling))
        return out

    def _segmentation_estimates(self, resampling: Resampling) -> dict[str, Estimate | None]:
        rows, has_object = self.segmentation_rows, self.has_object
        if rows is None or has_object is None:  # both are set when masks were given
            return {"miou": None, "pixel_accuracy": None, "average_precision": None}
        sub = resampling.subset(has_object)
        scores = rows.counts().scores()
        with np.errstate(invalid="ignore", divide="ignore"):
            ious = [sub.sums(i) / sub.sums(u) for i, u in zip(rows.intersection, rows.union) if int(u.sum()) > 0]
        enough = sub.size >= MIN_VALUES
        accuracy = sub.ratio(rows.correct, torch.full_like(rows.correct, rows.pixels))
        ap = sub.mean(rows.ap)
        return {
            "miou": estimate(scores["miou"], np.mean(ious, axis=0) if ious and enough else None),
            "pixel_accuracy": accuracy,
            "average_precision": with_value(scores["average_precision"], ap),
        }

    def survival_estimates(self, resampling: Resampling) -> dict[str, list[Estimate | None]]:
        """Each step of the positive and negative survival curves with its interval."""
        return {
            curve.mode: [resampling.mean(curve.hits[:, j].double()) for j in range(curve.hits.shape[1])]
            for curve in (self.faithfulness.positive, self.faithfulness.negative)
        }

    def class_estimates(
        self, classes: torch.Tensor | Sequence[int], k: int, resampling: Resampling
    ) -> list[dict[str, Estimate | None]]:
        """:meth:`per_class` with intervals: the images of each pseudo-class resampled among themselves (no
        interval for a pseudo-class with fewer than :data:`MIN_CLASS_VALUES` defined values)."""
        classes = torch.as_tensor(classes).cpu()
        columns = self._columns()
        figures = self.per_class(classes, k)
        out = []
        for c in range(k):
            members = classes == c
            sub = resampling.subset(members)
            out.append(
                {
                    key: with_value(
                        figures[c][key], sub.mean(v[members], min_values=MIN_CLASS_VALUES) if v is not None else None
                    )
                    for key, v in columns.items()
                }
            )
        return out

    def undefined(self) -> dict[str, int]:
        """Images with a mask whose pointing game (constant map) or mask energy (no positive relevance) is undefined."""
        if self.has_object is None or self.pointing is None or self.energy is None:  # all set when masks were given
            return {}
        return {
            key: int((self.has_object & torch.isnan(v)).sum())
            for key, v in (("pointing_game", self.pointing), ("mask_energy", self.energy))
        }


def evaluate_maps(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor | Sequence[int],
    *,
    normalization: Normalization,
    masks: torch.Tensor | None = None,
    tolerance: float = POINTING_TOLERANCE,
    threshold_rule: str = "mean",
    fractions: Sequence[float] = STEPS,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    removal: str = "black",
    perturbation: FaithfulnessResult | None = None,
) -> MapEvaluation:
    """Faithfulness of ``maps`` for ``target`` on ``model``, and localisation on ``masks`` if given.

    ``normalization``: how ``images`` were normalised (:data:`backbones.preprocessing.RAW` for [0, 1] input).
    ``removal``: what the perturbation test puts in place of removed pixels (``"black"``, the
    published protocol, or ``"blur"``, the report's: see docs/EVALUATION.md).

    An image without an object mask takes an all-False mask: it is left out of every
    localisation figure (and of the segmentation counts) but still counts for faithfulness.
    ``perturbation``: the curves of these maps when the caller already ran the perturbation test.
    """
    maps = check_maps(maps).cpu()
    if perturbation is not None and perturbation.positive.hits.shape[0] != maps.shape[0]:
        raise ProbeValueError(
            f"perturbation curves of {perturbation.positive.hits.shape[0]} images for {maps.shape[0]} maps"
        )
    result = perturbation or faithfulness(
        model,
        images,
        maps,
        target,
        normalization=normalization,
        fractions=fractions,
        batch_size=batch_size,
        device=device,
        removal=removal,
    )
    if masks is None:
        return MapEvaluation(result, None, None, None, None, None, None)
    masks = check_mask_batch(masks).cpu()
    has_object = masks.flatten(1).any(dim=1)
    columns: dict[str, list[torch.Tensor]] = {"pointing": [], "energy": [], "centre": [], "area": []}
    rows: list[SegmentationRows] = []
    for start in range(0, maps.shape[0], batch_size):  # chunks keep the [N, H, W] temporaries small
        chunk = slice(start, start + batch_size)
        m, k, obj = maps[chunk], masks[chunk], has_object[chunk]
        columns["pointing"].append(pointing_game(m, k, tolerance))
        columns["energy"].append(mask_energy(m, k))
        columns["centre"].append(centre_pointing_game(k, tolerance))
        columns["area"].append(mask_fraction(k))
        if obj.any():
            rows.append(segmentation_rows(m[obj], k[obj], rule=threshold_rule))
    joined = {key: torch.cat(parts) for key, parts in columns.items()}
    return MapEvaluation(result, segmentation_rows=_joined_rows(rows), has_object=has_object, **joined)


def _joined_rows(parts: list[SegmentationRows]) -> SegmentationRows | None:
    if not parts:
        return None
    return SegmentationRows(
        correct=torch.cat([p.correct for p in parts]),
        pixels=parts[0].pixels,
        intersection=(torch.cat([p.intersection[0] for p in parts]), torch.cat([p.intersection[1] for p in parts])),
        union=(torch.cat([p.union[0] for p in parts]), torch.cat([p.union[1] for p in parts])),
        ap=torch.cat([p.ap for p in parts]),
        binary_map=torch.cat([p.binary_map for p in parts]),
    )
