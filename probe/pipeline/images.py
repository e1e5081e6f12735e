"""Image batches and masks of a dataset, in a backbone's input geometry."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch

from backbones.preprocessing import Normalization
from probe.devices import to_device
from unsupervised import ImageFolderData
from unsupervised.masks import MaskKey


def with_transform(data: ImageFolderData, transform: Callable) -> ImageFolderData:
    """A view of ``data`` whose items (and masks) follow ``transform`` (each backbone has its own preprocessing)."""
    view = copy.copy(data)
    view.transform = transform
    return view


def seeded_subset(data: ImageFolderData, count: int | None, seed: int) -> ImageFolderData:
    """At most ``count`` images of ``data``, drawn without replacement with ``seed``, in folder order."""
    if count is None or count >= len(data):
        return data
    rng = np.random.default_rng([seed, 0x5EED])
    return data.subset(np.sort(rng.choice(len(data), size=count, replace=False)).tolist())


def load_batch(
    data: ImageFolderData, indices: Sequence[int] | np.ndarray, device: str | torch.device | None = None
) -> torch.Tensor:
    """The preprocessed images ``[N, 3, H, W]`` at dataset ``indices`` (on ``device``: on a GPU copied from
    pinned memory without waiting)."""
    images = torch.stack([data[int(i)][0] for i in indices])
    return images if device is None else to_device(images, device)


def unnormalise(images: torch.Tensor, *, normalization: Normalization) -> np.ndarray:
    """Preprocessed ``[N, 3, H, W]`` back to displayable ``[N, H, W, 3]`` floats in [0, 1]."""
    x = normalization.invert(images.detach().cpu().float())
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


class MaskReader:
    """Per-label object masks of a dataset's images in its transform's geometry, read once and kept.

    Label keys are turned into class-folder names where possible: a name stays a name; a
    label-image value ``v`` without a ``categories.json`` name is taken as class folder
    ``v - 1`` in sorted order (0 is background), the convention of the demo world.
    """

    def __init__(self, data: ImageFolderData) -> None:
        self.data = data
        self._cache: dict[int, dict[str, torch.Tensor] | None] = {}

    @property
    def available(self) -> bool:
        return self.data.masks_root is not None

    def label_name(self, key: MaskKey) -> str:
        names = self.data.class_names
        if isinstance(key, (int, np.integer)) and 1 <= key <= len(names):
            return names[int(key) - 1]
        return str(key)

    def by_label(self, index: int) -> dict[str, torch.Tensor] | None:
        """``{label: bool [H, W]}`` of image ``index``, or None when it has no (readable) mask."""
        if index not in self._cache:
            raw = self.data.masks_by_label(index) if self.available else None
            self._cache[index] = None if raw is None else {self.label_name(k): v for k, v in raw.items()}
        return self._cache[index]

    def objects(self, index: int) -> int:
        """Number of labelled objects in image ``index`` (0 without a mask)."""
        masks = self.by_label(index)
        return 0 if masks is None else sum(1 for m in masks.values() if bool(m.any()))

    def union(self, indices: Sequence[int], size: tuple[int, int]) -> torch.Tensor:
        """Object masks ``[N, H, W]`` (all labels together); all-False where an image has no mask."""
        out = torch.zeros(len(indices), *size, dtype=torch.bool)
        for row, index in enumerate(indices):
            masks = self.by_label(int(index))
            for mask in (masks or {}).values():
                out[row] |= mask
        return out
