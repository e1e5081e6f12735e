"""Object masks that mirror an image folder, and their alignment with a model's input geometry.

Convention (see docs/UNSUPERVISED.md): for the image ``<rel_dir>/<stem>.<ext>`` the masks
folder holds either ``<rel_dir>/<stem>.png`` (a binary mask, or a label image whose
pixel value ``c`` marks category ``c``, 0 = background; an optional ``categories.json`` at
the masks root maps values to names) or one binary mask per category,
``<rel_dir>/<stem>.<category>.png``. Any non-zero pixel is object.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .errors import DataError
from .images import UnreadableImage, open_label_map, read_header

CATEGORIES_FILE = "categories.json"
MASK_EXTENSION = ".png"
MaskKey = int | str

# transform steps that change pixel values only, never geometry (torchvision v1 and v2, and timm names)
_PHOTOMETRIC = {
    "ToTensor",
    "PILToTensor",
    "ToImage",
    "ToDtype",
    "ToPureTensor",
    "ConvertImageDtype",
    "Normalize",
    "MaybeToTensor",
    "MaybePILToTensor",
    "ToNumpy",
    "ConvertRGB",
    "Grayscale",
    "ColorJitter",
    "RandomGrayscale",
    "GaussianBlur",
    "RandomInvert",
    "RandomPosterize",
    "RandomSolarize",
    "RandomAdjustSharpness",
    "RandomAutocontrast",
    "RandomEqualize",
    "Identity",
}


def read_categories(masks_root: Path) -> dict[int, str]:
    """The optional ``categories.json`` (``{"1": "circle", ...}``) mapping label values to names."""
    path = masks_root / CATEGORIES_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        mapping = {int(value): str(name) for value, name in raw.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(f"{path}: expected a JSON object mapping pixel values to category names ({exc})") from None
    if any(value < 1 for value in mapping):
        raise DataError(f"{path}: pixel values must be >= 1 (0 is background)")
    return mapping


class MaskIndex:
    """Where the masks of each image are: one label/binary file or several per-category files."""

    def __init__(self, masks_root: str | os.PathLike) -> None:
        self.root = Path(masks_root)
        if not self.root.is_dir():
            raise DataError(f"masks folder {self.root} does not exist or is not a folder")
        self.categories = read_categories(self.root)
        self._single: set[tuple[str, str]] = set()  # (rel_dir, stem) of <stem>.png
        self._per_category: dict[tuple[str, str], list[str]] = defaultdict(list)  # (rel_dir, stem) -> categories
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                if not name.lower().endswith(MASK_EXTENSION) or name.startswith("."):
                    continue
                mask_stem = name[: -len(MASK_EXTENSION)]
                self._single.add((rel_dir, mask_stem))
                if "." in mask_stem:
                    base, category = mask_stem.rsplit(".", 1)
                    self._per_category[rel_dir, base].append(category)

    def files_for(self, rel_path: str) -> list[tuple[MaskKey | None, Path]]:
        """Mask files of the image at ``rel_path``: ``[(None, file)]`` or ``[(category, file), ...]``."""
        rel = Path(rel_path)
        rel_dir, stem = rel.parent.as_posix(), rel.stem
        if (rel_dir, stem) in self._single:
            return [(None, self.root / rel.parent / f"{stem}{MASK_EXTENSION}")]
        return [
            (category, self.root / rel.parent / f"{stem}.{category}{MASK_EXTENSION}")
            for category in self._per_category.get((rel_dir, stem), [])
        ]

    def check(self, rel_path: str, image_size: tuple[int, int]) -> str | None:
        """A note on the image's masks (missing, unreadable, size mismatch), or None when all is well."""
        files = self.files_for(rel_path)
        if not files:
            return "no mask: localisation unavailable for this image"
        for _, file in files:
            try:
                header = read_header(file)
            except UnreadableImage as exc:
                return f"mask {file.name} unreadable ({exc}): localisation unavailable for this image"
            if (header.width, header.height) != image_size:
                return (
                    f"mask {file.name} is {header.width}x{header.height}, image is "
                    f"{image_size[0]}x{image_size[1]}: mask resized (nearest neighbour)"
                )
        return None

    def label_maps(self, rel_path: str, image_size: tuple[int, int]) -> dict[MaskKey, np.ndarray] | None:
        """Boolean masks per label at the image's (EXIF-upright) size, or None when the image has none."""
        files = self.files_for(rel_path)
        if not files:
            return None
        masks: dict[MaskKey, np.ndarray] = {}
        try:
            for category, file in files:
                values = _fit_to(open_label_map(file), image_size)
                if category is not None:
                    masks[category] = values != 0
                    continue
                for value in np.unique(values):
                    if value != 0:
                        masks[self.categories.get(int(value), int(value))] = values == value
        except UnreadableImage:
            return None
        return masks


def _fit_to(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label array to ``size`` (width, height) with nearest neighbour if it differs."""
    if (values.shape[1], values.shape[0]) == size:
        return values
    image = Image.fromarray(values.astype(np.int32), mode="I")
    return np.asarray(image.resize(size, Image.Resampling.NEAREST)).astype(np.int64)


def geometry_of(transform: Callable | None) -> list[Callable[[Image.Image], Image.Image]]:
    """The resize/crop steps of a torchvision transform, re-expressed with nearest-neighbour sampling.

    Supported: ``Compose``, ``Resize``, ``CenterCrop`` and steps that do not move pixels
    (``ToTensor``, ``Normalize``, ...). Anything else (random crops, flips, lambdas) cannot
    be mirrored on a mask and raises :class:`DataError`.
    """
    if transform is None:
        return []
    step: Any = transform  # matched by class name below; its attributes are read as that class has them
    name = type(step).__name__
    if name == "Compose":
        return [inner_step for inner in step.transforms for inner_step in geometry_of(inner)]
    if name == "Resize":
        size, max_size = step.size, getattr(step, "max_size", None)
        return [lambda img: TF.resize(img, size, interpolation=InterpolationMode.NEAREST, max_size=max_size)]
    if name == "CenterCrop":
        crop = step.size
        return [lambda img: TF.center_crop(img, crop)]
    if name in _PHOTOMETRIC:
        return []
    raise DataError(
        f"cannot align masks with transform step {name}: only Resize, CenterCrop and steps that do not "
        "move pixels (ToTensor, Normalize, ...) can be mirrored on masks"
    )


def apply_geometry(mask: np.ndarray, steps: list[Callable[[Image.Image], Image.Image]]) -> torch.Tensor:
    """Apply geometric ``steps`` to a boolean mask; returns a bool tensor ``[H, W]``."""
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    for step in steps:
        image = step(image)
    return torch.from_numpy(np.asarray(image) > 0)
