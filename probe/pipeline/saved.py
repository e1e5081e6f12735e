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
import os
import re
from pathlib import Path
from typing import Any

import torch

import backbones
from probe.errors import ProbeValueError
from probe.fileio import atomic_write_json
from unsupervised import DataError, ProbeModel, PseudoClasses

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


def write_meta(directory: Path, *, name: str, role: str, backbone: backbones.Backbone,
               control_of: backbones.Backbone | None, control_seed: int | None, k: int, seed: int) -> None:
    """Record how to rebuild ``backbone`` (a control is rebuilt from its probe's checkpoint and seed), as pending."""
    source = control_of if control_of is not None else backbone
    path = source.source.path
    atomic_write_json(pending(directory / META_FILE), {
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
    })


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProbeValueError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(meta, dict) or meta.get("version") != META_VERSION:
        raise ProbeValueError(f"{path}: not a probe.json of version {META_VERSION}")
    return meta


def resolve_run_dir(run_dir: str | Path) -> Path:
    """The folder holding one probed backbone's files: ``run_dir`` itself, or its only probe under ``backbones/``."""
    run_dir = Path(run_dir)
    if (run_dir / META_FILE).is_file():
        return run_dir
    probes = sorted(p.parent for p in run_dir.glob(f"{BACKBONES_DIR}/*/{META_FILE}")
                    if read_meta(p.parent).get("role") == "probe")
    if len(probes) == 1:
        return probes[0]
    if probes:
        listed = ", ".join(str(p) for p in probes)
        raise ProbeValueError(f"--run {run_dir} holds several probed backbones; pass one of: {listed}")
    raise ProbeValueError(f"--run {run_dir} is not the output of `probe run` (no {BACKBONES_DIR}/*/{META_FILE}); "
                          "run `probe run --weights CKPT --data DIR --k K --out DIR` first")


def load_backbone(directory: Path, *, weights: str | Path | None = None, format: str | None = None,
                  arch: str | None = None, device: str | torch.device = "cpu") -> backbones.Backbone:
    """The backbone a run folder was made with.

    ``weights`` replaces the recorded checkpoint path (its format and architecture are then detected
    unless given); the pseudo-classes check later that it is the same checkpoint.
    """
    meta = read_meta(directory)
    if weights is None:
        weights, format, arch = meta["weights"], format or meta["format"], arch or meta["arch"]
        if weights is None or not Path(weights).is_file():
            raise ProbeValueError(f"{directory / META_FILE}: checkpoint {weights} not found; pass --weights FILE")
    backbone = backbones.load(weights, format=format, arch=arch, device=device)
    if meta["control_seed"] is not None:
        backbone = backbones.random_like(backbone, int(meta["control_seed"]))
    return backbone


def load_pseudo_classes(directory: Path, backbone: backbones.Backbone) -> PseudoClasses:
    """The run's pseudo-classes, checked against ``backbone``'s weights (sha256)."""
    try:
        return PseudoClasses.load(directory / STATE_FILE, backbone=backbone)
    except DataError as exc:
        raise ProbeValueError(f"--run {directory}: {exc}") from None


def load_probe_model(run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(model, mean, std, num_classes)``: the pseudo-class model saved by ``probe run`` in ``run_dir``.

    ``model`` is ``ProbeModel(backbone, head)`` on ``device`` in eval mode; ``mean``/``std`` are
    the backbone's normalisation (None for [0, 1] input).
    """
    directory = resolve_run_dir(run_dir)
    backbone = load_backbone(directory, device=device)
    model: ProbeModel = load_pseudo_classes(directory, backbone).probe_model(backbone)
    return model.eval(), backbone.mean, backbone.std, model.num_classes
