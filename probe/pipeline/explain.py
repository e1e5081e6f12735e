"""Stage explain for one backbone: every method's maps of the evaluation subset's images, and the
primary method's maps of each pseudo-class's most central images (its card in the report)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probe.evaluation import explain_in_batches, explainer
from probe.report import Member

from .images import MaskReader, load_batch, unnormalise
from .options import ProbeOptions
from .prepare import Prepared
from .selection import central_rows, evaluation_rows
from .stages import StageClock, timed


@dataclass
class Explained:
    """The explain stage's output for one backbone."""

    indices: np.ndarray  # dataset indices of the evaluated images
    images: torch.Tensor  # [N, 3, H, W] preprocessed
    masks: torch.Tensor | None  # [N, H, W] object masks, None without a masks folder
    target: torch.Tensor  # [N] the head's top-1 pseudo-class of each image
    maps: dict[str, torch.Tensor]  # method -> [N, H, W]
    members: list[list[Member]]  # per pseudo-class: its card's images with their maps


def predict(model: torch.nn.Module, images: torch.Tensor, *, batch: int, device: str | torch.device) -> torch.Tensor:
    """Top-1 pseudo-class of each image (CPU long tensor)."""
    out = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch):
            out.append(model(images[start : start + batch].to(device)).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _maps(prep: Prepared, images: torch.Tensor, target: torch.Tensor, method: str, options: ProbeOptions,
          desc: str) -> torch.Tensor:
    """``method``'s maps of ``images`` for ``target`` on ``prep``'s model, with the run's options for that method."""
    return explain_in_batches(explainer(method, **options.options_of(method)), prep.model, images, target,
                              batch_size=options.explain_batch, device=options.device, desc=desc)


def _members(prep: Prepared, control: Prepared | None, options: ProbeOptions) -> list[list[Member]]:
    """Each pseudo-class's most central images with the primary method's map and the control's map."""
    per_class = central_rows(np.asarray(prep.features), prep.clusters, prep.pseudo.centroids,
                             spherical=prep.pseudo.spherical, count=options.card_members)
    rows = [row for group in per_class for row in group]
    if not rows:
        return [[] for _ in per_class]
    indices = prep.rows[rows]
    images = load_batch(prep.data, indices)
    target = torch.tensor([c for c, group in enumerate(per_class) for _ in group])
    maps = _maps(prep, images, target, options.method, options, f"explain {prep.name} cards")
    control_maps = None
    if control is not None:
        control_images = load_batch(control.data, indices)
        control_target = predict(control.model, control_images, batch=options.batch_size, device=options.device)
        control_maps = _maps(control, control_images, control_target, options.method, options,
                             f"explain {control.name} cards")
    shown = unnormalise(images, prep.backbone.mean, prep.backbone.std)
    labels = prep.data.labels
    members, position = [], 0
    for group in per_class:
        card = []
        for _ in group:
            index = int(indices[position])
            card.append(Member(
                name=prep.data.rel_paths[index],
                image=shown[position],
                map=maps[position].numpy(),
                label=prep.data.class_names[int(labels[index])] if labels is not None else None,
                control_map=control_maps[position].numpy() if control_maps is not None else None,
            ))
            position += 1
        members.append(card)
    return members


def explain(prep: Prepared, options: ProbeOptions, *, masks: MaskReader | None, control: Prepared | None,
            clock: StageClock) -> Explained:
    """The evaluation subset (single-object images when masks exist) with its masks, targets and every
    method's maps, then the cards' members (with ``control``'s maps of the same images when given)."""
    with clock("explain", prep.name):
        usable = (lambda row: masks.objects(int(prep.rows[row])) < 2) if masks is not None else None
        rows = evaluation_rows(prep.clusters, prep.pseudo.k, per_class=options.eval_per_class,
                               cap=options.eval_images, seed=options.seed, usable=usable)
        indices = prep.rows[rows]
        images = load_batch(prep.data, indices)
        object_masks = masks.union(indices.tolist(), tuple(images.shape[-2:])) if masks is not None else None
        target = predict(prep.model, images, batch=options.batch_size, device=options.device)
        maps = {}
        for m in options.methods:
            with timed(f"{prep.name}: {m} maps of {len(indices)} images"):
                maps[m] = _maps(prep, images, target, m, options, f"explain {prep.name} {m}")
        members = _members(prep, control, options)
    return Explained(indices, images, object_masks, target, maps, members)
