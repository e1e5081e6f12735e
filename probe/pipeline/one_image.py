"""``probe explain``: one image, one pseudo-class of an earlier ``probe run``, one overlay PNG."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from probe.devices import resolve_device
from probe.errors import ParameterError
from probe.fileio import atomic_path
from probe.report.figures import overlay
from unsupervised.images import UnreadableImage, open_rgb

from .images import unnormalise
from .methods import settle_methods
from .options import DEVICE, ProbeOptions, check_methods
from .saved import BACKBONES_DIR, load_backbone, load_pseudo_classes, read_meta, resolve_run_dir


@dataclass
class ImageExplanation:
    """The explained pseudo-class, every pseudo-class's probability, the map and where its overlay went."""

    target: int
    probabilities: np.ndarray  # [k]
    labels: list[str | None]  # majority folder label of each pseudo-class, when the run had labels
    map: np.ndarray  # [H, W]
    overlay_path: Path

    def describe(self, limit: int = 10) -> str:
        """Pseudo-classes by probability (the explained one marked), then where the overlay is."""
        lines = ["pseudo-class  probability  majority label"]
        for c in np.argsort(-self.probabilities, kind="stable")[:limit].tolist():
            mark = "  <- explained" if c == self.target else ""
            label = self.labels[c] if self.labels[c] is not None else "-"
            lines.append(f"{c:>12}  {self.probabilities[c]:>11.3f}  {label}{mark}")
        if len(self.probabilities) > limit and self.target not in np.argsort(-self.probabilities)[:limit]:
            lines.append(f"{self.target:>12}  {self.probabilities[self.target]:>11.3f}  (explained)")
        lines.append(f"overlay: {self.overlay_path}")
        return "\n".join(lines)


def _majority_labels(directory: Path, k: int) -> list[str | None]:
    """Each pseudo-class's majority label from the run's metrics.json (None where unknown)."""
    name = read_meta(directory)["name"]
    root = directory.parent.parent if directory.parent.name == BACKBONES_DIR else directory
    try:
        metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
        entry = next(b for b in metrics["backbones"] if b["name"] == name)
        found = {int(pc["id"]): pc["majority_label"] for pc in entry["pseudo_classes"]}
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        found = {}
    return [found.get(c) for c in range(k)]


def _target(probabilities: np.ndarray, pseudo_class: int | None, rank: int | None) -> int:
    k = len(probabilities)
    if pseudo_class is not None:
        if not 0 <= pseudo_class < k:
            raise ParameterError("pseudo_class", f"{pseudo_class}: the run has k={k} pseudo-classes (0..{k - 1})")
        return pseudo_class
    rank = 0 if rank is None else rank
    if not 0 <= rank < k:
        raise ParameterError("rank", f"{rank}: must be in 0..{k - 1} (0 = the top-1 pseudo-class; k={k})")
    return int(np.argsort(-probabilities, kind="stable")[rank])


def explain_image(
    image: str | os.PathLike,
    *,
    run: str | os.PathLike | None,
    weights: str | os.PathLike | None = None,
    format: str | None = None,
    arch: str | None = None,
    pseudo_class: int | None = None,
    rank: int | None = None,
    method: str | None = None,
    out: str | os.PathLike | None = None,
    device: str = DEVICE,
) -> ImageExplanation:
    """Explain ``image`` for a pseudo-class of the run in ``run`` (``pseudo_class``, or the one ranked
    ``rank``, default the top-1) with ``method`` (default: the run defaults' primary method for the backbone,
    e.g. AGF for a CNN) and write the overlay PNG to ``out`` (default ``<stem>.<method>.pc<C>.png`` here)."""
    if run is None:
        raise ParameterError(
            "run",
            "not given: pseudo-classes come from `probe run`; run `probe run --weights CKPT "
            "--data DIR --k K --out RUN` first, then explain with its folder RUN",
        )
    resolved = resolve_device(device)
    check_methods(method)
    directory = resolve_run_dir(run)
    backbone = load_backbone(directory, weights=weights, format=format, arch=arch, device=resolved)
    pseudo = load_pseudo_classes(directory, backbone)
    settled = ProbeOptions(k=pseudo.k, method=method, baselines=(), device=resolved)
    method = settle_methods(settled, backbone, str(weights or directory)).method
    model = pseudo.probe_model(backbone).to(resolved).eval()
    path = Path(image)
    try:
        pil = open_rgb(path)
    except FileNotFoundError:
        raise ParameterError("image", f"{path}: no such file") from None
    except (UnreadableImage, OSError) as exc:
        raise ParameterError("image", f"{path}: {exc}") from None
    x = backbone.preprocess(pil).unsqueeze(0).to(resolved)
    with torch.inference_mode():
        probabilities = torch.softmax(model(x), dim=1)[0].double().cpu().numpy()
    target = _target(probabilities, pseudo_class, rank)
    from probe import explain

    relevance = explain(model, x, torch.tensor([target], device=resolved), method=method)[0].detach().float().cpu()
    shown = unnormalise(x, normalization=backbone.preprocessing.normalization)[0]
    destination = Path(out) if out is not None else Path(f"{path.stem}.{method}.pc{target}.png")
    with atomic_path(destination, suffix=".png") as tmp:
        Image.fromarray(overlay(shown, relevance.numpy())).save(tmp, format="PNG")
    labels = _majority_labels(directory, pseudo.k)
    return ImageExplanation(target, probabilities, labels, relevance.numpy(), destination)
