"""The same few images explained by every probed backbone of a run with its own primary method, for the
report's side-by-side figure (the demo's ResNets beside its ViT). Each backbone explains its own top-1
pseudo-class of each image, in its own preprocessing."""

from __future__ import annotations

from collections.abc import Sequence

from probe.evaluation import explain_in_batches, explainer
from probe.report import MapRow, SideBySide

from .explain import predict
from .images import MaskReader, load_batch, unnormalise
from .options import SIDE_BY_SIDE_IMAGES, ProbeOptions
from .prepare import Prepared
from .selection import side_by_side_rows
from .stages import StageClock


def side_by_side(
    probes: Sequence[tuple[Prepared, ProbeOptions]], *, clock: StageClock, count: int = SIDE_BY_SIDE_IMAGES
) -> SideBySide | None:
    """Each probe's primary-method maps of the same images (single-object ones when there are masks);
    None for a run with fewer than two probed backbones."""
    if len(probes) < 2:
        return None
    first, options = probes[0]
    data = first.data
    masks = MaskReader(data) if data.masks_root is not None else None
    usable = (lambda row: masks.objects(int(first.rows[row])) < 2) if masks is not None else None
    labels = first.features.labels
    rows = side_by_side_rows(len(first.rows), labels, count=count, seed=options.seed, usable=usable)
    if not rows:
        return None
    indices = first.rows[rows]
    maps = []
    with clock("explain", "side by side"):
        for prep, chosen in probes:
            images = load_batch(prep.data, indices)
            target = predict(prep.model, images, batch=chosen.batch_size, device=chosen.device)
            explain = explainer(chosen.primary, **chosen.options_of(chosen.primary))
            found = explain_in_batches(
                explain,
                prep.model,
                images,
                target,
                batch_size=chosen.explain_batch,
                device=chosen.device,
                desc=f"explain {prep.name} side by side",
            )
            maps.append(
                MapRow(
                    backbone=prep.name,
                    method=chosen.primary,
                    classes=[int(c) for c in target],
                    images=list(unnormalise(images, normalization=prep.backbone.preprocessing.normalization)),
                    maps=[m.numpy() for m in found],
                )
            )
    names = [data.rel_paths[int(i)] for i in indices]
    class_names = first.features.class_names
    folder: list[str | None] = (
        [class_names[int(labels[row])] for row in rows] if labels is not None else [None] * len(rows)
    )
    return SideBySide(names=names, labels=folder, rows=maps)
