"""Stage explain for one backbone: maps of a batch of images (the evaluation subset's, see
:mod:`.measure`) and the primary method's maps of each pseudo-class's most central images (its
card in the report), with the control's map of the same images beside them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probe.devices import to_device
from probe.evaluation import FaithfulnessResult, explain_in_batches, explainer
from probe.report import Member
from unsupervised.distributed import Group

from .images import load_batch, unnormalise
from .options import ProbeOptions
from .prepare import Prepared
from .selection import central_rows


@dataclass
class Explained:
    """The evaluated images of one backbone with their maps and perturbation curves, and its cards."""

    indices: np.ndarray  # dataset indices of the evaluated images, in the order evaluated
    images: torch.Tensor  # [N, 3, H, W] preprocessed, on the CPU
    masks: torch.Tensor | None  # [N, H, W] object masks, None without a masks folder
    target: torch.Tensor  # [N] the head's top-1 pseudo-class of each image
    maps: dict[str, torch.Tensor]  # method -> [N, H, W]
    faithfulness: dict[str, FaithfulnessResult]  # method -> perturbation curves of its maps
    members: list[list[Member]]  # per pseudo-class: its card's images with their maps
    gap_halfwidth: float  # half-width of the 95% interval of the primary method's mean faithfulness gap


def predict(model: torch.nn.Module, images: torch.Tensor, *, batch: int, device: str | torch.device) -> torch.Tensor:
    """Top-1 pseudo-class of each image (CPU long tensor)."""
    out = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch):
            x = to_device(images[start : start + batch], device)
            out.append(model(x.contiguous(memory_format=torch.channels_last)).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def explain_maps(
    prep: Prepared, images: torch.Tensor, target: torch.Tensor, method: str, options: ProbeOptions
) -> torch.Tensor:
    """``method``'s maps (CPU) of ``images`` for ``target`` on ``prep``'s model, with the run's options for it."""
    return explain_in_batches(
        explainer(method, **options.options_of(method)),
        prep.model,
        images,
        target,
        batch_size=options.explain_batch,
        device=options.device,
    )


def _maps_shared(
    prep: Prepared, images: torch.Tensor, target: torch.Tensor, options: ProbeOptions, group: Group
) -> torch.Tensor:
    """The primary method's maps of ``images``, one batch per task dealt to the ranks."""
    size = options.explain_batch
    starts = list(range(0, images.shape[0], size))
    parts = group.map(
        lambda s: explain_maps(prep, images[s : s + size], target[s : s + size], options.primary, options), starts
    )
    return torch.cat(parts) if parts else torch.zeros(0, *images.shape[2:])


def cards(
    prep: Prepared, evaluated: Explained, control: Prepared | None, options: ProbeOptions, group: Group
) -> list[list[Member]]:
    """Each pseudo-class's most central images with the primary method's map and the control's map.

    A card image that was evaluated for the same pseudo-class keeps the map it got there.
    """
    per_class = central_rows(
        np.asarray(prep.features),
        prep.clusters,
        prep.pseudo.centroids,
        spherical=prep.pseudo.spherical,
        count=options.card_members,
    )
    rows = [row for group_rows in per_class for row in group_rows]
    if not rows:
        return [[] for _ in per_class]
    indices = prep.rows[rows]
    target = torch.tensor([c for c, group_rows in enumerate(per_class) for _ in group_rows])
    position = {int(index): i for i, index in enumerate(evaluated.indices)}
    known = [position.get(int(index)) for index in indices]
    reuse = [i is not None and int(evaluated.target[i]) == int(t) for i, t in zip(known, target)]
    fresh = [j for j, kept in enumerate(reuse) if not kept]
    images = load_batch(prep.data, indices)
    maps = torch.zeros(len(indices), *images.shape[2:])
    if fresh:
        maps[fresh] = _maps_shared(prep, images[fresh], target[fresh], options, group)
    for j, kept in enumerate(reuse):
        if kept:
            maps[j] = evaluated.maps[options.primary][known[j]]
    control_maps = None
    if control is not None:
        control_images = load_batch(control.data, indices)
        control_target = predict(control.model, control_images, batch=options.explain_batch, device=options.device)
        control_maps = _maps_shared(control, control_images, control_target, options, group)
    shown = unnormalise(images, normalization=prep.backbone.preprocessing.normalization)
    labels = prep.data.labels
    members, j = [], 0
    for group_rows in per_class:
        card = []
        for _ in group_rows:
            index = int(indices[j])
            card.append(
                Member(
                    name=prep.data.rel_paths[index],
                    image=shown[j],
                    map=maps[j].numpy(),
                    label=prep.data.class_names[int(labels[index])] if labels is not None else None,
                    control_map=control_maps[j].numpy() if control_maps is not None else None,
                )
            )
            j += 1
        members.append(card)
    return members
