"""What a run leaves behind to be reused: ``OUT/backbones/<name>/probe.json`` + ``pseudo_classes.pt``.

``probe.json`` says how to rebuild the backbone (checkpoint path, format, architecture, sha256,
or the seed of a random-init control); ``pseudo_classes.pt`` holds the clusters and the head.
Together they give back the exact pseudo-class model, for ``probe explain --run`` and the
paper benchmarks (:func:`load_probe_model`). A run writes them as ``<file>.pending`` and moves
them into place only once its report is written, so a failed run never leaves state that
disagrees with the report beside it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import backbones
from probe.errors import ParameterError, ProbeValueError
from probe.fileio import atomic_write_json
from unsupervised import DataError, Features, ProbeModel, PseudoClasses

from .options import ProbeOptions

log = logging.getLogger("probe.pipeline")

BACKBONES_DIR = "backbones"
META_FILE = "probe.json"
STATE_FILE = "pseudo_classes.pt"
META_VERSION = 1
PENDING = ".pending"
_SAVED = (META_FILE, STATE_FILE)


def pending(path: Path) -> Path:
    """Where a run writes ``path`` until its report is written."""
    return path.with_name(path.name + PENDING)


def discard_pending(directory: Path) -> None:
    """Remove a failed earlier run's unpromoted files from one backbone's folder."""
    for name in _SAVED:
        pending(directory / name).unlink(missing_ok=True)


def promote_pending(directory: Path) -> None:
    """Move one backbone's pending ``probe.json`` / ``pseudo_classes.pt`` into place (after the report)."""
    for name in _SAVED:
        if pending(directory / name).exists():
            os.replace(pending(directory / name), directory / name)


def slug(name: str) -> str:
    """A file-system-safe folder name for a backbone name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "backbone"


def backbone_dir(out: Path, name: str) -> Path:
    return Path(out) / BACKBONES_DIR / slug(name)


def write_meta(
    directory: Path,
    *,
    name: str,
    role: str,
    backbone: backbones.Backbone,
    control_of: backbones.Backbone | None,
    control_seed: int | None,
    k: int,
    seed: int,
) -> None:
    """Record how to rebuild ``backbone`` (a control is rebuilt from its probe's checkpoint and seed), as pending."""
    source = control_of if control_of is not None else backbone
    path = source.source.path
    atomic_write_json(
        pending(directory / META_FILE),
        {
            "version": META_VERSION,
            "name": name,
            "role": role,
            "weights": str(Path(path).resolve()) if path is not None else None,
            "format": source.format,
            "arch": source.arch,
            "sha256": source.source.sha256,
            "control_seed": control_seed,
            "k": int(k),
            "seed": int(seed),
        },
    )


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProbeValueError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(meta, dict) or meta.get("version") != META_VERSION:
        raise ProbeValueError(f"{path}: not a probe.json of version {META_VERSION}")
    return meta


def resolve_run_dir(run_dir: str | os.PathLike) -> Path:
    """The folder holding one probed backbone's files: ``run_dir`` itself, or its only probe under ``backbones/``."""
    run_dir = Path(run_dir)
    if (run_dir / META_FILE).is_file():
        return run_dir
    probes = sorted(
        p.parent for p in run_dir.glob(f"{BACKBONES_DIR}/*/{META_FILE}") if read_meta(p.parent).get("role") != "control"
    )
    if len(probes) == 1:
        return probes[0]
    if probes:
        listed = ", ".join(str(p) for p in probes)
        raise ParameterError("run", f"{run_dir} holds several probed backbones; pass one of: {listed}")
    raise ParameterError(
        "run",
        f"{run_dir} is not the output of `probe run` (no {BACKBONES_DIR}/*/{META_FILE}); "
        "run `probe run --weights CKPT --data DIR --k K --out DIR` first",
    )


def load_backbone(
    directory: Path,
    *,
    weights: str | os.PathLike | None = None,
    format: str | None = None,
    arch: str | None = None,
    device: str | torch.device = "cpu",
) -> backbones.Backbone:
    """The backbone a run folder was made with.

    ``weights`` replaces the recorded checkpoint path (its format and architecture are then detected
    unless given); the pseudo-classes check later that it is the same checkpoint.
    """
    meta = read_meta(directory)
    if weights is None:
        weights, format, arch = meta["weights"], format or meta["format"], arch or meta["arch"]
        if weights is None or not Path(weights).is_file():
            raise ParameterError(
                "weights", f"not given, and the checkpoint {weights} recorded in {directory / META_FILE} is not found"
            )
    backbone = backbones.load(weights, format=format, arch=arch, device=device)
    if meta["control_seed"] is not None:
        backbone = backbones.random_like(backbone, int(meta["control_seed"]))
    return backbone


def load_pseudo_classes(directory: Path, backbone: backbones.Backbone) -> PseudoClasses:
    """The run's pseudo-classes, checked against ``backbone``'s weights (sha256)."""
    try:
        return PseudoClasses.load(directory / STATE_FILE, backbone=backbone)
    except DataError as exc:
        raise ParameterError("run", f"{directory}: {exc}") from None


def reusable_pseudo_classes(
    path: Path, features: Features, backbone: backbones.Backbone, options: ProbeOptions
) -> PseudoClasses | None:
    """The pseudo-classes saved at ``path`` if they were made from these features, k, seed and restarts."""
    if not path.is_file() or features.key is None:
        return None
    try:
        state = PseudoClasses.load(path, backbone=backbone)
    except DataError as exc:
        log.info("not reusing %s: %s", path, exc)
        return None
    same = (
        state.feature_key == features.key
        and state.k == options.k
        and state.seed == options.seed
        and state.spherical
        and state.config.get("nredo") == options.restarts
    )
    if not same:
        log.info("not reusing %s: made from other features, k, seed or restarts", path)
        return None
    return state


@dataclass
class SavedProbe:
    """The pseudo-class model of a run folder: the backbone with its head, in eval mode."""

    model: ProbeModel
    backbone: backbones.Backbone

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def normalization(self) -> backbones.Normalization:
        """The backbone's input normalisation (:data:`backbones.preprocessing.RAW` for [0, 1] input)."""
        return self.backbone.preprocessing.normalization


def load_probe_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> SavedProbe:
    """The pseudo-class model saved by ``probe run`` in ``run_dir``, on ``device`` in eval mode."""
    directory = resolve_run_dir(run_dir)
    backbone = load_backbone(directory, device=device)
    model: ProbeModel = load_pseudo_classes(directory, backbone).probe_model(backbone)
    return SavedProbe(model.eval(), backbone)
