"""Feature extraction: backbone features of every image, streamed to a resumable, keyed memmap cache.

Decoding and preprocessing run in DataLoader workers while the backbone runs in the
main process, in channels-last layout (faster convolutions on CPU and GPU). Rows are written to a
float32 memmap as batches finish, so an interrupted run resumes where it stopped; under torchrun
each rank computes its share of a fixed batch grid and the result equals a single-process run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from probe.devices import model_device, resolve_device
from probe.errors import ProbeError, sigterm_unwinds
from probe.progress import progress_enabled

from . import distributed
from .cache import CacheEntry, EntryLock, Partial, key_fields, key_of
from .data import ImageFolderData
from .errors import DataError, name_some
from .images import UnreadableImage, open_rgb

log = logging.getLogger("unsupervised")


@dataclass
class Features:
    """Features of a dataset's images: ``array`` ``[N, D]`` float32 (memory-mapped) with its index.

    ``np.asarray(features)`` gives the array; ``len`` the number of images. Images that
    could not be used are in ``skipped`` as ``(path, reason)``.
    """

    array: np.ndarray
    paths: list[str]
    labels: np.ndarray | None
    class_names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    key: str | None = None
    root: str | None = None

    def __len__(self) -> int:
        return len(self.array)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = np.asarray(self.array)
        return array.astype(dtype) if dtype is not None and dtype != array.dtype else array

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.array[index]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.array.shape)

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    def __repr__(self) -> str:
        return f"Features({len(self)}x{self.dim}, {len(self.skipped)} skipped, key={self.key})"


def _resolve_device(backbone: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is None:
        return model_device(backbone)
    device = resolve_device(device)
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class _Decoded(torch.utils.data.Dataset):
    """Yields ``(index, tensor or None, failure reason or None)``: a bad file never breaks a batch."""

    def __init__(self, dataset: ImageFolderData, transform: Callable) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = open_rgb(self.dataset.image_path(index))
        except UnreadableImage as exc:
            return index, None, str(exc)
        return index, self.transform(image), None


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> tuple[list[int], torch.Tensor | None, list]:
    good = [(i, x) for i, x, _ in items if x is not None]
    failed = [(i, why) for i, x, why in items if x is None]
    if not good:
        return [], None, failed
    shapes = {tuple(x.shape) for _, x in good}
    if len(shapes) > 1:
        raise DataError(f"the transform must produce tensors of one size for batching; got {sorted(shapes)}")
    return [i for i, _ in good], torch.stack([x for _, x in good]), failed


def _progress_enabled(progress: bool | None, group: distributed.Group) -> bool:
    if progress is not None:
        return progress and group.is_main
    return group.is_main and progress_enabled()


def _feature_dim(backbone: nn.Module, probe_input: Callable[[], torch.Tensor]) -> int:
    dim = getattr(backbone, "feature_dim", None)
    if dim is not None:
        return int(dim)
    with torch.inference_mode():
        return int(backbone(probe_input()).shape[1])


def _run_batches(
    backbone: nn.Module,
    dataset: ImageFolderData,
    transform: Callable,
    partial: Partial,
    batches: list[list[int]],
    *,
    num_workers: int,
    device: torch.device,
    show: bool,
) -> None:
    loader = torch.utils.data.DataLoader(
        _Decoded(dataset, transform),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    dim = partial.features.shape[1]
    rel_paths = dataset.rel_paths
    bar = tqdm(total=sum(len(b) for b in batches), unit="img", desc="features", disable=not show, smoothing=0.1)
    try:
        with sigterm_unwinds(), torch.inference_mode():
            for rows, images, failed in loader:
                if failed:
                    partial.fail(failed)
                    log.warning(
                        "skipped unreadable images: %s", name_some([f"{rel_paths[i]} ({why})" for i, why in failed])
                    )
                if images is not None:
                    out = backbone(images.to(device, non_blocking=True, memory_format=torch.channels_last))
                    if out.ndim != 2 or out.shape != (len(rows), dim):
                        raise DataError(
                            f"backbone returned features of shape {tuple(out.shape)}; expected [{len(rows)}, {dim}]"
                        )
                    partial.write(np.asarray(rows), out.float().cpu().numpy())
                bar.update(len(rows) + len(failed))
    finally:
        partial.flush()
        bar.close()


def _extract_into(
    entry: CacheEntry,
    backbone: nn.Module,
    dataset: ImageFolderData,
    transform: Callable,
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    group: distributed.Group,
    progress: bool | None,
) -> None:
    """Fill (or resume) the entry's work area, this rank's share of it, then publish it from rank 0."""
    dim = _feature_dim(backbone, lambda: transform(dataset.load_image(0)).unsqueeze(0).to(device))
    with contextlib.ExitStack() as held:
        problem: BaseException | None = None
        resumed = False
        if group.is_main:
            try:
                held.enter_context(EntryLock(entry))
                resumed = entry.prepare_partial(len(dataset), dim)
            except (ProbeError, OSError) as exc:
                problem = exc
        if not group.all_true(problem is None):  # every rank stops, none waits at a barrier
            raise problem or DataError("rank 0 could not prepare the feature cache; see its log")
        # The split is decided once, by rank 0 before any rank writes, and sent to all: a rank reading the
        # shared status by itself could see rows another rank has already finished, split a shorter list,
        # and leave batches to no rank.
        partial = Partial(entry.partial_dir, group.rank) if group.is_main else None
        batches = group.broadcast(partial.pending_batches(batch_size) if partial is not None else None)
        partial = partial or Partial(entry.partial_dir, group.rank)
        if resumed and group.is_main:
            done = len(dataset) - sum(len(b) for b in batches)
            log.info(
                "resuming feature extraction in %s: %d of %d images already done", entry.partial_dir, done, len(dataset)
            )
        try:
            _run_batches(
                backbone,
                dataset,
                transform,
                partial,
                batches[group.rank :: group.world_size],
                num_workers=num_workers,
                device=device,
                show=_progress_enabled(progress, group),
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
            problem = exc
        if not group.all_true(problem is None):
            raise problem or DataError("feature extraction failed on another rank; see that rank's log")
        failures = partial.failures()
        if len(failures) == len(dataset):
            rel_paths = dataset.rel_paths
            raise DataError(
                f"no readable images in {dataset.root}: all {len(dataset)} failed to decode: "
                + name_some([f"{rel_paths[row]} ({why})" for row, why in sorted(failures.items())])
            )
        if group.is_main:
            try:
                entry.finalise(partial, dataset.rel_paths, dataset.labels, dataset.class_names)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
                problem = exc
        del partial
        if not group.all_true(problem is None):
            raise problem or DataError("rank 0 could not publish the features; see its log")


def _as_features(entry: CacheEntry, dataset: ImageFolderData) -> Features:
    array, index = entry.load()
    if index["nonfinite_rows"]:
        bad = [index["rel_paths"][i] for i in index["nonfinite_rows"]]
        raise DataError(
            f"the backbone produced NaN/inf features for {len(bad)} images in {dataset.root}: {name_some(bad)}"
        )
    root = dataset.root
    skipped = list(dataset.skipped) + [(str(root / rel), why) for rel, why in index["failures"]]
    labels = None if index["labels"] is None else np.asarray(index["labels"], dtype=np.int64)
    return Features(
        array=array,
        paths=[str(root / rel) for rel in index["rel_paths"]],
        labels=labels,
        class_names=list(index["class_names"]),
        skipped=skipped,
        key=entry.key,
        root=str(root),
    )


def extract_features(
    backbone: nn.Module,
    dataset: ImageFolderData,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> Features:
    """Backbone features ``[N, D]`` of every readable image of ``dataset``.

    Images are preprocessed with ``dataset.transform`` or, when it is None,
    ``backbone.preprocess``. With ``cache_dir`` the result is cached under a key of the
    backbone's sha256, the transform and the file list, and an interrupted run resumes.
    Under torchrun every rank calls this; each extracts its share, all get the result
    (``cache_dir`` must then be on a filesystem every rank sees).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise DataError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    if len(dataset) == 0:
        raise DataError(f"no images to extract features from in {dataset.root}")
    transform = dataset.transform if dataset.transform is not None else getattr(backbone, "preprocess", None)
    if transform is None:
        raise DataError("no transform: give the dataset a transform or use a backbone with .preprocess")
    device = _resolve_device(backbone, device)
    original_device = _resolve_device(backbone, None)
    was_training = backbone.training
    # channels_last: faster convolutions on CPU and GPU. torch's stubs lack the (device, memory_format)
    # overload of Module.to that it accepts at run time.
    backbone.eval().to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    group = distributed.join(device)
    temporary = None
    try:
        fields = key_fields(backbone, dataset.fingerprint(), transform)
        key = key_of(fields)
        if not group.all_true(group.broadcast(key) == key):
            raise DataError(f"ranks see different data in {dataset.root} (files changed while starting?)")
        if cache_dir is None:
            temporary = group.broadcast(tempfile.mkdtemp(prefix="ssl-probe-features-") if group.is_main else None)
            cache_dir = temporary
        entry = CacheEntry(Path(cache_dir), key, fields)
        if not group.broadcast(entry.is_complete()):
            _extract_into(
                entry,
                backbone,
                dataset,
                transform,
                batch_size=batch_size,
                num_workers=num_workers,
                device=device,
                group=group,
                progress=progress,
            )
        else:
            log.info("features for %s loaded from cache %s", dataset.root, entry.final_dir)
        features = _as_features(entry, dataset)
        if temporary is not None:
            features.key = None
        return features
    finally:
        if temporary is not None:
            group.barrier()  # every rank has mapped the array; the files may go (the mappings stay valid)
            if group.is_main:
                shutil.rmtree(temporary, ignore_errors=True)
        backbone.to(original_device).train(was_training)
