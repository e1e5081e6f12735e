"""Image folders as datasets: ImageFolder layout (sub-folder = label) or flat, unreadable files skipped.

The folder is scanned once, cheaply (file sizes and image headers); files that are
empty, not images, or too large are listed in ``skipped`` with a reason instead of
failing later. Images are decoded to upright 8-bit RGB whatever their mode.
"""

from __future__ import annotations

import copy
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import DataError, name_some
from .images import IMAGE_EXTENSIONS, UnreadableImage, open_rgb, read_header
from .masks import MaskIndex, MaskKey, apply_geometry, geometry_of

log = logging.getLogger("unsupervised")

LAYOUTS = ("auto", "imagefolder", "flat")


@dataclass(frozen=True)
class ImageRecord:
    """One usable image: path relative to the root (POSIX), file size and mtime, label, upright size."""

    rel_path: str
    size: int
    mtime_ns: int
    label: int
    width: int
    height: int


def _visible_walk(root: Path, skip: Path | None) -> list[Path]:
    """Every non-hidden file under ``root`` (sorted, deterministic), leaving out the ``skip`` folder."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (skip is None or here / d != skip))
        files.extend(here / name for name in sorted(filenames) if not name.startswith("."))
    return files


class ImageFolderData(torch.utils.data.Dataset):
    """A folder of images, labelled by sub-folder (torchvision ``ImageFolder``) or flat (unlabelled).

    ``layout="auto"`` picks ImageFolder when any sub-folder holds images; then images
    directly under the root are skipped (they have no label). ``dataset[i]`` returns
    ``(image, label)`` with ``transform`` applied (a PIL image without one) and label -1
    for flat folders. ``masks`` is a folder mirroring the images (see :mod:`.masks`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        masks: str | os.PathLike | None = None,
        transform: Callable | None = None,
        layout: str = "auto",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root} does not exist or is not a folder")
        if layout not in LAYOUTS:
            raise DataError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
        self.transform = transform
        self.masks_root = Path(masks).expanduser().resolve() if masks is not None else None
        self._mask_index = MaskIndex(self.masks_root) if self.masks_root is not None else None
        self.skipped: list[tuple[str, str]] = []
        self.mask_issues: list[tuple[str, str]] = []
        self._scan(layout, tuple(e.lower() for e in extensions))

    # ----------------------------------------------------------------- scanning
    def _scan(self, layout: str, extensions: tuple[str, ...]) -> None:
        candidates: list[Path] = []
        for file in _visible_walk(self.root, self.masks_root):
            if file.suffix.lower() in extensions:
                candidates.append(file)
            else:
                self.skipped.append((str(file), f"not an image file extension ({file.suffix or 'none'})"))
        nested = [f for f in candidates if f.parent != self.root]
        if layout == "auto":
            layout = "imagefolder" if nested else "flat"
        self.layout = layout
        if layout == "imagefolder":
            for file in candidates:
                if file.parent == self.root:
                    self.skipped.append((str(file), "outside any class folder (ImageFolder layout)"))
            candidates = nested
            self.class_names = sorted({f.relative_to(self.root).parts[0] for f in candidates})
        else:
            self.class_names = []
        class_index = {name: i for i, name in enumerate(self.class_names)}

        def inspect(file: Path) -> ImageRecord | tuple[str, str]:
            try:
                stat = file.stat()
                header = read_header(file)
            except UnreadableImage as exc:
                return (str(file), str(exc))
            except OSError as exc:
                return (str(file), f"cannot read: {exc.strerror or exc}")
            rel = file.relative_to(self.root).as_posix()
            label = class_index[rel.split("/", 1)[0]] if layout == "imagefolder" else -1
            return ImageRecord(rel, stat.st_size, stat.st_mtime_ns, label, header.width, header.height)

        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            results = list(pool.map(inspect, candidates))
        self._records = [r for r in results if isinstance(r, ImageRecord)]
        self.skipped.extend(r for r in results if not isinstance(r, ImageRecord))
        self.skipped.sort()
        if self.skipped:
            log.warning("%s: skipped %d of %d files: %s", self.root, len(self.skipped),
                        len(self.skipped) + len(self._records),
                        name_some([f"{Path(p).name} ({why})" for p, why in self.skipped]))
        if not self._records:
            detail = f"; {len(self.skipped)} files skipped: " + name_some([f"{p} ({w})" for p, w in self.skipped]) \
                if self.skipped else ""
            raise DataError(f"no readable images in {self.root}{detail}")
        if self._mask_index is not None:
            for record in self._records:
                note = self._mask_index.check(record.rel_path, (record.width, record.height))
                if note is not None:
                    self.mask_issues.append((str(self.root / record.rel_path), note))
            if self.mask_issues:
                log.warning("%s: %d images have mask issues: %s", self.masks_root, len(self.mask_issues),
                            name_some([f"{Path(p).name} ({why})" for p, why in self.mask_issues]))

    # ----------------------------------------------------------------- views
    @property
    def records(self) -> list[ImageRecord]:
        """The usable images, in dataset order."""
        return list(self._records)

    @property
    def paths(self) -> list[str]:
        """Absolute paths of the usable images, in dataset order."""
        return [str(self.root / r.rel_path) for r in self._records]

    @property
    def rel_paths(self) -> list[str]:
        """Paths relative to the root (POSIX separators)."""
        return [r.rel_path for r in self._records]

    @property
    def labels(self) -> np.ndarray | None:
        """Class index per image (int64), or None for a flat folder."""
        if self.layout != "imagefolder":
            return None
        return np.array([r.label for r in self._records], dtype=np.int64)

    @property
    def has_labels(self) -> bool:
        return self.layout == "imagefolder"

    def fingerprint(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime_ns) per image: what the feature cache is keyed on."""
        return [(r.rel_path, r.size, r.mtime_ns) for r in self._records]

    def subset(self, indices: Sequence[int]) -> "ImageFolderData":
        """A dataset over the images at ``indices`` (same root, masks, transform and class names)."""
        picked = [self._records[int(i)] for i in indices]
        if not picked:
            raise DataError(f"empty subset of {self.root}")
        view = copy.copy(self)
        view._records = picked
        keep = {str(self.root / r.rel_path) for r in picked}
        view.mask_issues = [issue for issue in self.mask_issues if issue[0] in keep]
        return view

    def __len__(self) -> int:
        return len(self._records)

    # ----------------------------------------------------------------- loading
    def image_path(self, index: int) -> Path:
        """Absolute path of image ``index``."""
        return self.root / self._records[index].rel_path

    def load_image(self, index: int) -> Image.Image:
        """The image at ``index`` as upright 8-bit RGB; :class:`DataError` naming the file if unreadable."""
        try:
            return open_rgb(self.image_path(index))
        except UnreadableImage as exc:
            raise DataError(f"{self.image_path(index)}: {exc}") from None

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.load_image(index)
        return (self.transform(image) if self.transform is not None else image), self._records[index].label

    def _native_masks(self, index: int) -> dict[MaskKey, np.ndarray] | None:
        if self._mask_index is None:
            return None
        record = self._records[index]
        return self._mask_index.label_maps(record.rel_path, (record.width, record.height))

    def masks_by_label(self, index: int, transform: Callable | None = None) -> dict[MaskKey, torch.Tensor] | None:
        """Boolean masks ``[H, W]`` per category of image ``index``, or None when it has no mask.

        Keys are category names (per-category files, or label images with a
        ``categories.json``) or the label image's pixel values. Masks follow the geometry
        of ``transform`` (default: the dataset's transform; none: the image's own size).
        """
        maps = self._native_masks(index)
        if maps is None:
            return None
        steps = geometry_of(transform if transform is not None else self.transform)
        return {key: apply_geometry(mask, steps) for key, mask in maps.items()}

    def mask(self, index: int, transform: Callable | None = None) -> torch.Tensor | None:
        """The object mask (any labelled pixel) of image ``index``, aligned like :meth:`masks_by_label`."""
        maps = self._native_masks(index)
        if maps is None:
            return None
        record = self._records[index]
        union = np.logical_or.reduce(list(maps.values())) if maps else np.zeros((record.height, record.width), bool)
        return apply_geometry(union, geometry_of(transform if transform is not None else self.transform))

    def __repr__(self) -> str:
        kind = f"{len(self.class_names)} classes" if self.has_labels else "unlabelled"
        return f"ImageFolderData({str(self.root)!r}, {len(self)} images, {kind}, {len(self.skipped)} skipped)"
