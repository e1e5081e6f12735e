"""Image folders as datasets: ImageFolder layout (sub-folder = label) or flat, unreadable files skipped.

The folder is scanned once, cheaply: names and sizes, plus image headers when masks are
given (their sizes are checked against the images) or ``check_headers=True``. Files that
are empty, not images or too large are listed in ``skipped`` with a reason; those only
decoding can unmask are listed by feature extraction. Images are decoded to upright 8-bit
RGB whatever their mode.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import DataError, name_some
from .images import IMAGE_EXTENSIONS, UnreadableImage, open_rgb, read_header
from .masks import MASK_EXTENSION, MaskIndex, MaskKey, apply_geometry, geometry_of

log = logging.getLogger("unsupervised")

LAYOUTS = ("auto", "imagefolder", "flat")


@dataclass(frozen=True)
class ImageRecord:
    """One image: path relative to the root (POSIX), file size and mtime, label, upright size if read."""

    rel_path: str
    size: int
    mtime_ns: int
    label: int
    width: int | None = None
    height: int | None = None

    def upright_size(self) -> tuple[int, int]:
        """(width, height) as read from the header (always read when masks are given)."""
        if self.width is None or self.height is None:
            raise RuntimeError(f"{self.rel_path}: the image's size was not read (headers are read with masks)")
        return self.width, self.height


def _visible_files(root: Path, skip: Path | None) -> list[tuple[str, os.DirEntry]]:
    """(POSIX path relative to ``root``, directory entry) of every non-hidden file, sorted; ``skip`` left out."""
    found: list[tuple[str, os.DirEntry]] = []
    pending = [("", str(root))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name, reverse=True):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    if skip is None or Path(entry.path) != skip:
                        pending.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file():
                    found.append((f"{prefix}{entry.name}", entry))
    return sorted(found, key=lambda item: item[0])


class ImageFolderData(torch.utils.data.Dataset):
    """A folder of images, labelled by sub-folder (torchvision ``ImageFolder``) or flat (unlabelled).

    ``layout="auto"`` picks ImageFolder when any sub-folder holds images; then images
    directly under the root are skipped (they have no label). ``dataset[i]`` returns
    ``(image, label)`` with ``transform`` applied (a PIL image without one) and label -1
    for flat folders. ``masks`` is a folder mirroring the images (see :mod:`.masks`).
    ``check_headers=True`` reads every image header now, to list undecodable files before
    extraction (it is done anyway when masks are given).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        masks: str | os.PathLike | None = None,
        transform: Callable | None = None,
        layout: str = "auto",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        check_headers: bool = False,
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
        self._scan(layout, tuple(e.lower() for e in extensions), check_headers or masks is not None)

    # ----------------------------------------------------------------- scanning
    def _scan(self, layout: str, extensions: tuple[str, ...], check_headers: bool) -> None:
        candidates: list[tuple[str, os.DirEntry]] = []
        for rel, entry in _visible_files(self.root, self.masks_root):
            suffix = os.path.splitext(rel)[1].lower()
            if suffix in extensions:
                candidates.append((rel, entry))
            else:
                self.skipped.append((entry.path, f"not an image file extension ({suffix or 'none'})"))
        nested = [item for item in candidates if "/" in item[0]]
        if layout == "auto":
            layout = "imagefolder" if nested else "flat"
        self.layout = layout
        if layout == "imagefolder":
            self.skipped.extend(
                (entry.path, "outside any class folder (ImageFolder layout)")
                for rel, entry in candidates
                if "/" not in rel
            )
            candidates = nested
            self.class_names = sorted({rel.split("/", 1)[0] for rel, _ in candidates})
        else:
            self.class_names = []
        class_index = {name: i for i, name in enumerate(self.class_names)}

        def inspect(item: tuple[str, os.DirEntry]) -> ImageRecord | tuple[str, str]:
            rel, entry = item
            try:
                stat = entry.stat()
                header = read_header(entry.path) if check_headers else None
            except UnreadableImage as exc:
                return (entry.path, str(exc))
            except OSError as exc:
                return (entry.path, f"cannot read: {exc.strerror or exc}")
            if stat.st_size == 0:
                return (entry.path, "empty file (0 bytes)")
            label = class_index[rel.split("/", 1)[0]] if layout == "imagefolder" else -1
            size = (header.width, header.height) if header is not None else (None, None)
            return ImageRecord(rel, stat.st_size, stat.st_mtime_ns, label, *size)

        if check_headers:
            with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
                results = list(pool.map(inspect, candidates))
        else:
            results = [inspect(item) for item in candidates]
        self._records = [r for r in results if isinstance(r, ImageRecord)]
        self.skipped.extend(r for r in results if not isinstance(r, ImageRecord))
        self.skipped.sort()
        if self.skipped:
            log.warning(
                "%s: skipped %d of %d files: %s",
                self.root,
                len(self.skipped),
                len(self.skipped) + len(self._records),
                name_some([f"{Path(p).name} ({why})" for p, why in self.skipped]),
            )
        if not self._records:
            detail = (
                f"; {len(self.skipped)} files skipped: " + name_some([f"{p} ({w})" for p, w in self.skipped])
                if self.skipped
                else ""
            )
            raise DataError(f"no usable images in {self.root}{detail}")
        if self._mask_index is not None:
            self._check_masks_match(self._mask_index)
            for record in self._records:
                note = self._mask_index.check(record.rel_path, record.upright_size())
                if note is not None:
                    self.mask_issues.append((str(self.root / record.rel_path), note))
            if self.mask_issues:
                log.warning(
                    "%s: %d images have mask issues: %s",
                    self.masks_root,
                    len(self.mask_issues),
                    name_some([f"{Path(p).name} ({why})" for p, why in self.mask_issues]),
                )

    def _check_masks_match(self, mask_index: MaskIndex) -> None:
        """A masks folder with no mask for any image is a mistake (wrong folder or naming), not a skip."""
        if any(mask_index.files_for(record.rel_path) for record in self._records):
            return
        example = Path(self._records[0].rel_path).with_suffix(MASK_EXTENSION)
        raise DataError(
            f"masks folder {mask_index.root} has no mask for any of the {len(self._records)} images in "
            f"{self.root}: masks mirror the image paths, e.g. {mask_index.root / example}"
        )

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

    def subset(self, indices: Sequence[int]) -> ImageFolderData:
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
        return self._mask_index.label_maps(record.rel_path, record.upright_size())

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
        if maps:
            union = np.logical_or.reduce(list(maps.values()))
        else:
            width, height = self._records[index].upright_size()
            union = np.zeros((height, width), bool)
        return apply_geometry(union, geometry_of(transform if transform is not None else self.transform))

    def __repr__(self) -> str:
        kind = f"{len(self.class_names)} classes" if self.has_labels else "unlabelled"
        return f"ImageFolderData({str(self.root)!r}, {len(self)} images, {kind}, {len(self.skipped)} skipped)"
