"""On-disk feature store: keyed, resumable, finalised atomically.

Layout under ``cache_dir``::

    <key>/features.npy    float32 [N, D], read back memory-mapped
    <key>/index.json      paths, labels, class names, load failures, key fields
    <key>.partial/        work area of an unfinished extraction (resumable)

The key is a hash of the backbone's sha256/arch/format, the transform and the
dataset's file list with sizes and mtimes, so an entry is never used for another
backbone, transform or set of files. The final folder appears in one ``rename``:
if it exists, it is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch.nn as nn

from probe.fileio import atomic_write_json

from .errors import DataError, name_some

CACHE_VERSION = 1
PENDING, DONE, FAILED = 0, 1, 2
FLUSH_EVERY_S = 10.0


def backbone_sha256(backbone: nn.Module) -> str:
    """The checkpoint's sha256 (``backbone.source.sha256``) or, without one, a hash of the state dict."""
    source = getattr(backbone, "source", None)
    sha = getattr(source, "sha256", None)
    if sha:
        return str(sha)
    digest = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "state:" + digest.hexdigest()


def key_fields(backbone: nn.Module, fingerprint: list[tuple[str, int, int]], transform: Any) -> dict[str, Any]:
    """Everything the features depend on, as JSON-ready fields."""
    files = hashlib.sha256(json.dumps(fingerprint, separators=(",", ":")).encode()).hexdigest()
    return {
        "version": CACHE_VERSION,
        "backbone_sha256": backbone_sha256(backbone),
        "arch": str(getattr(backbone, "arch", type(backbone).__name__)),
        "format": str(getattr(backbone, "format", "")),
        "transform": repr(transform),
        "files_sha256": files,
        "num_files": len(fingerprint),
    }


def key_of(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


class Partial:
    """The work area of one extraction: a features memmap, a per-row status memmap, load failures.

    Rows are marked done only after their features were flushed, so the status never
    claims rows that a crash could have lost. Several processes (one per rank) may
    write disjoint rows of the same partial.
    """

    def __init__(self, directory: Path, rank: int) -> None:
        self.directory = directory
        self.rank = rank
        self.features = np.load(directory / "features.npy", mmap_mode="r+")
        self.status = np.load(directory / "status.npy", mmap_mode="r+")
        self._done: list[np.ndarray] = []
        self._failed: list[tuple[int, str]] = []
        self._last_flush = time.monotonic()

    @staticmethod
    def create(directory: Path, fields: dict[str, Any], n: int, dim: int) -> None:
        """(Re)create an empty work area for ``n`` rows of ``dim`` features."""
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        np.lib.format.open_memmap(directory / "features.npy", mode="w+", dtype=np.float32, shape=(n, dim)).flush()
        np.lib.format.open_memmap(directory / "status.npy", mode="w+", dtype=np.uint8, shape=(n,)).flush()
        atomic_write_json(directory / "meta.json", {"fields": fields, "rows": n, "dim": dim})  # written last

    @staticmethod
    def usable(directory: Path, fields: dict[str, Any], n: int, dim: int) -> bool:
        """True if ``directory`` holds a complete work area for exactly these key fields and shape."""
        try:
            meta = json.loads((directory / "meta.json").read_text())
            features = np.load(directory / "features.npy", mmap_mode="r")
            status = np.load(directory / "status.npy", mmap_mode="r")
        except (OSError, ValueError):
            return False
        return (
            meta == {"fields": fields, "rows": n, "dim": dim}
            and features.shape == (n, dim)
            and features.dtype == np.float32
            and status.shape == (n,)
        )

    def pending_batches(self, batch_size: int) -> list[list[int]]:
        """Batches of a fixed grid (rows ``[b*B, (b+1)*B)``) that still have unfinished rows.

        The grid makes each row's batch the same whatever the number of processes, so
        results do not depend on how the work was split.
        """
        status = np.asarray(self.status)
        n = len(status)
        batches = []
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            if (status[rows] == PENDING).any():
                batches.append(rows[status[rows] != FAILED].tolist())
        return batches

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        self.features[rows] = values
        self._done.append(np.asarray(rows))
        self._maybe_flush()

    def fail(self, rows_and_reasons: list[tuple[int, str]]) -> None:
        self._failed.extend(rows_and_reasons)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Persist features, then the failures, then the status flags that point at them."""
        self.features.flush()
        if self._failed:
            with open(self.directory / f"failures.{self.rank}.jsonl", "a", encoding="utf-8") as handle:
                for row, reason in self._failed:
                    handle.write(json.dumps([int(row), reason]) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.status[[row for row, _ in self._failed]] = FAILED
        if self._done:
            self.status[np.concatenate(self._done)] = DONE
        self.status.flush()
        self._done, self._failed = [], []
        self._last_flush = time.monotonic()

    def failures(self) -> dict[int, str]:
        """Rows that could not be decoded, from every rank's log, with their reasons."""
        found: dict[int, str] = {}
        for log_file in sorted(self.directory.glob("failures.*.jsonl")):
            for line in log_file.read_text(encoding="utf-8").splitlines():
                try:
                    row, reason = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash; its row is still pending
                found[int(row)] = str(reason)
        return found


@dataclass
class CacheEntry:
    """One key's place under ``cache_dir``: the final folder and the work area."""

    cache_dir: Path
    key: str
    fields: dict[str, Any]
    final_dir: Path = field(init=False)
    partial_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.final_dir = self.cache_dir / self.key
        self.partial_dir = self.cache_dir / f"{self.key}.partial"

    def is_complete(self) -> bool:
        """True if the final folder holds this key's index and a features array of the shape it records."""
        try:
            index = json.loads((self.final_dir / "index.json").read_text())
            array = np.load(self.final_dir / "features.npy", mmap_mode="r")
        except (OSError, ValueError):
            return False
        return (
            index.get("fields") == self.fields and list(array.shape) == index.get("shape") and array.dtype == np.float32
        )

    def prepare_partial(self, n: int, dim: int) -> bool:
        """Make sure a usable work area exists; returns True when an earlier run is resumed."""
        if Partial.usable(self.partial_dir, self.fields, n, dim):
            return True
        Partial.create(self.partial_dir, self.fields, n, dim)
        return False

    def finalise(
        self, partial: Partial, rel_paths: list[str], labels: np.ndarray | None, class_names: list[str]
    ) -> None:
        """Compact the finished work area into the final folder and publish it with one rename.

        Raises :class:`DataError` naming the rows that are neither done nor failed to decode: an unfinished
        row holds zeros, never features. The work area is then kept, so a rerun computes just those rows.
        """
        failures = partial.failures()
        unfinished = [row for row in np.flatnonzero(np.asarray(partial.status) != DONE).tolist() if row not in failures]
        if unfinished:
            raise DataError(
                f"feature extraction left {len(unfinished)} of {len(rel_paths)} images without "
                f"features: {name_some([rel_paths[row] for row in unfinished])} (rows "
                f"{name_some([str(row) for row in unfinished])}); nothing was published and "
                f"{self.partial_dir} is kept, so running again computes only those"
            )
        keep = np.array([row not in failures for row in range(len(rel_paths))], dtype=bool)
        staging = self.cache_dir / f".{self.key}.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        target = staging / "features.npy"
        if keep.all():
            partial.features.flush()
            os.replace(self.partial_dir / "features.npy", target)
            final = np.load(target, mmap_mode="r")
        else:
            final = np.lib.format.open_memmap(
                target, mode="w+", dtype=np.float32, shape=(int(keep.sum()), partial.features.shape[1])
            )
            rows = np.flatnonzero(keep)
            for start in range(0, len(rows), 65536):
                chunk = rows[start : start + 65536]
                final[start : start + len(chunk)] = partial.features[chunk]
            final.flush()
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())
        kept = np.flatnonzero(keep)
        atomic_write_json(
            staging / "index.json",
            {
                "fields": self.fields,
                "key": self.key,
                "shape": list(final.shape),
                "rel_paths": [rel_paths[i] for i in kept],
                "labels": None if labels is None else [int(labels[i]) for i in kept],
                "class_names": list(class_names),
                "failures": [[rel_paths[row], reason] for row, reason in sorted(failures.items())],
                "nonfinite_rows": nonfinite_rows(final),
            },
        )
        del final
        if self.final_dir.exists() and not self.is_complete():
            shutil.rmtree(self.final_dir)  # a damaged entry of the same key: replaced, never used
        try:
            os.rename(staging, self.final_dir)
        except OSError:
            if not self.is_complete():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process published the same entry first
        shutil.rmtree(self.partial_dir, ignore_errors=True)

    def load(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The final features (read-only memmap) and the index; call after :meth:`is_complete`."""
        index = json.loads((self.final_dir / "index.json").read_text())
        return np.load(self.final_dir / "features.npy", mmap_mode="r"), index


def nonfinite_rows(array: np.ndarray, chunk: int = 65536) -> list[int]:
    """Indices of rows holding NaN or inf, read in chunks so a memmap is never loaded whole."""
    bad = []
    for start in range(0, len(array), chunk):
        block = np.asarray(array[start : start + chunk])
        bad.extend((start + np.flatnonzero(~np.isfinite(block).all(axis=1))).tolist())
    return bad


class EntryLock:
    """An exclusive, non-blocking lock on one key, held while a process writes its work area."""

    def __init__(self, entry: CacheEntry) -> None:
        self.path = entry.cache_dir / f"{entry.key}.lock"
        self._handle: IO[str] | None = None

    def __enter__(self) -> EntryLock:
        import fcntl

        from probe.errors import OutputError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise OutputError(
                f"feature cache entry {self.path.with_suffix('')} is being written by another "
                "process; wait for it to finish or use another --cache-dir"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
