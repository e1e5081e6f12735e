"""Stages explain and evaluate for one backbone: maps of every method on the evaluation subset,
then faithfulness, localisation, sanity and class specificity, gathered into ``BackboneResults``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from probe.errors import ProbeValueError
from probe.evaluation import (
    MapEvaluation,
    SpecificityResult,
    TwoObjectPairs,
    cascading_randomization,
    class_specificity,
    evaluate_maps,
    explainer,
    two_object_pairs,
)
from probe.evaluation._tensors import progress
from probe.report import BackboneResults, Member, PseudoClass, SpecificityExample, method_results

from .clusters import Prepared
from .images import MaskReader, load_batch, unnormalise
from .options import SPECIFICITY_EXAMPLES, ProbeOptions
from .selection import central_rows, evaluation_rows, label_to_class, two_object_rows
from .stages import StageClock, timed

log = logging.getLogger("probe.pipeline")


def predict(model: torch.nn.Module, images: torch.Tensor, *, batch: int, device: torch.device) -> torch.Tensor:
    """Top-1 pseudo-class of each image (CPU long tensor)."""
    out = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch):
            out.append(model(images[start : start + batch].to(device)).argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def explain_maps(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor, method: str, *, batch: int,
                 device: torch.device, desc: str, options: dict | None = None) -> torch.Tensor:
    """Maps ``[N, H, W]`` (CPU float32) of ``method`` for ``target``, in batches, with a progress bar."""
    from probe import explain

    chunks = []
    starts = range(0, images.shape[0], batch)
    for start in progress(starts, desc=desc, total=len(starts), unit="batch"):
        x = images[start : start + batch].to(device)
        maps = explain(model, x, target[start : start + batch].to(device), method=method, **(options or {}))
        chunks.append(maps.detach().float().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, *images.shape[2:])


@dataclass
class _Evaluated:
    """The explain stage's output for one backbone."""

    indices: np.ndarray  # dataset indices of the evaluated images
    images: torch.Tensor
    masks: torch.Tensor | None
    target: torch.Tensor
    maps: dict[str, torch.Tensor]


def _explain(prep: Prepared, options: ProbeOptions, masks: MaskReader | None) -> _Evaluated:
    """The evaluation subset (single-object images when masks exist), its masks, targets and maps."""
    usable = (lambda row: masks.objects(int(prep.rows[row])) < 2) if masks is not None else None
    rows = evaluation_rows(prep.clusters, prep.pseudo.k, per_class=options.eval_per_class, cap=options.eval_images,
                           seed=options.seed, usable=usable)
    indices = prep.rows[rows]
    images = load_batch(prep.data, indices)
    object_masks = masks.union(indices.tolist(), tuple(images.shape[-2:])) if masks is not None else None
    target = predict(prep.model, images, batch=options.batch_size, device=options.device)
    maps = {}
    for m in options.methods:
        with timed(f"{prep.name}: {m} maps of {len(indices)} images"):
            maps[m] = explain_maps(prep.model, images, target, m, batch=options.explain_batch, device=options.device,
                                   desc=f"explain {prep.name} {m}", options=options.options_of(m))
    return _Evaluated(indices, images, object_masks, target, maps)


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
    batch, device = options.explain_batch, options.device
    primary = options.options_of(options.method)
    maps = explain_maps(prep.model, images, target, options.method, batch=batch, device=device,
                        desc=f"explain {prep.name} cards", options=primary)
    control_maps = None
    if control is not None:
        control_images = load_batch(control.data, indices)
        control_target = predict(control.model, control_images, batch=options.batch_size, device=device)
        control_maps = explain_maps(control.model, control_images, control_target, options.method, batch=batch,
                                    device=device, desc=f"explain {control.name} cards", options=primary)
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


def _pairs(prep: Prepared, options: ProbeOptions, masks: MaskReader | None) -> tuple[np.ndarray, TwoObjectPairs] | None:
    """Two-object images whose labels map to different pseudo-classes of this backbone, or None."""
    if masks is None or prep.features.labels is None or options.specificity_images == 0:
        return None
    rows = two_object_rows(len(prep.rows), lambda row: masks.objects(int(prep.rows[row])),
                           count=options.specificity_images, seed=options.seed)
    if not rows:
        return None
    indices = prep.rows[rows]
    objects = [{label: m for label, m in (masks.by_label(int(i)) or {}).items() if bool(m.any())} for i in indices]
    mapping = label_to_class(prep.features.labels, prep.clusters, prep.features.class_names, prep.pseudo.k)
    try:
        pairs = two_object_pairs(objects, mapping)
    except ProbeValueError as exc:
        log.info("%s: class specificity not measured: %s", prep.name, exc)
        return None
    return indices[pairs.indices], pairs


def _specificity(prep: Prepared, options: ProbeOptions, found: tuple[np.ndarray, TwoObjectPairs] | None
                 ) -> tuple[dict[str, SpecificityResult], list[SpecificityExample]]:
    if found is None:
        return {}, []
    indices, pairs = found
    images = load_batch(prep.data, indices)
    results = {}
    for m in options.methods:
        with timed(f"{prep.name}: {m} specificity on {len(indices)} two-object images"):
            results[m] = class_specificity(prep.model, images, pairs.targets_a, pairs.targets_b, pairs.masks_a,
                                           pairs.masks_b, explain_fn=explainer(m, **options.options_of(m)),
                                           batch_size=options.explain_batch, device=options.device)
    primary = results[options.method]
    shown = unnormalise(images[:SPECIFICITY_EXAMPLES], prep.backbone.mean, prep.backbone.std)
    examples = []
    for j in range(min(SPECIFICITY_EXAMPLES, len(indices))):
        pearson = float(primary.pearson[j])
        examples.append(SpecificityExample(
            name=prep.data.rel_paths[int(indices[j])], image=shown[j], labels=pairs.labels[j],
            classes=(int(pairs.targets_a[j]), int(pairs.targets_b[j])),
            maps=(primary.maps_a[j].numpy(), primary.maps_b[j].numpy()),
            pearson=pearson if np.isfinite(pearson) else None,
        ))
    return results, examples


def _pseudo_classes(prep: Prepared, evaluation: MapEvaluation, target: torch.Tensor,
                    members: Sequence[Sequence[Member]]) -> list[PseudoClass]:
    k = prep.pseudo.k
    per_cluster = {entry["cluster"]: entry for entry in (prep.metrics or {}).get("per_cluster", [])}
    sizes = np.bincount(prep.clusters, minlength=k)
    figures = evaluation.per_class(target, k)
    out = []
    for c in range(k):
        entry = per_cluster.get(c, {})
        majority = entry.get("majority_name", entry.get("majority"))
        out.append(PseudoClass(id=c, size=int(sizes[c]), majority_label=None if majority is None else str(majority),
                               purity=entry.get("purity"), members=list(members[c]), **figures[c]))
    return out


def assess(prep: Prepared, options: ProbeOptions, *, control: Prepared | None, clock: StageClock) -> BackboneResults:
    """Explain and evaluate ``prep`` (a probe, or a control when ``control`` is None) into ``BackboneResults``."""
    masks = MaskReader(prep.data) if prep.data.masks_root is not None else None
    with clock("explain", prep.name):
        done = _explain(prep, options, masks)
        members = _members(prep, control, options)
    with clock("evaluate", prep.name):
        evaluations = {}
        for m in options.methods:
            with timed(f"{prep.name}: {m} maps evaluated"):
                evaluations[m] = evaluate_maps(prep.model, done.images, done.maps[m], done.target,
                                               mean=prep.backbone.mean, std=prep.backbone.std, masks=done.masks,
                                               batch_size=options.batch_size, device=options.device)
        sanity = None
        if prep.role == "probe" and options.sanity_images > 0:
            n = options.sanity_images
            sanity = cascading_randomization(prep.model, done.images[:n], done.target[:n], seed=options.seed,
                                             explain_fn=explainer(options.method, **options.options_of(options.method)),
                                             batch_size=options.explain_batch, device=options.device)
        specificity, examples = _specificity(prep, options, _pairs(prep, options, masks))
    methods = {m: method_results(evaluations[m], sanity=sanity if m == options.method else None,
                                 specificity=specificity.get(m)) for m in options.methods}
    overall = evaluations[options.method].overall()
    log.info("%s: evaluated %d images; %s", prep.name, len(done.indices),
             ", ".join(f"{m} gap {r.faithfulness_gap}" for m, r in methods.items()))
    return BackboneResults(
        name=prep.name, role=prep.role, clustering=prep.clustering(), methods=methods,
        pseudo_classes=_pseudo_classes(prep, evaluations[options.method], done.target, members),
        format=prep.backbone.format, arch=prep.backbone.arch, control=control.name if control is not None else None,
        centre_pointing_game=overall["centre_pointing_game"], mask_fraction=overall["mask_fraction"],
        specificity_examples=examples,
    )
