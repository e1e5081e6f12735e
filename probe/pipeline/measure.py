"""Stages explain and evaluate's work on the evaluation subset of one backbone, in rounds.

Each round takes the next images of the subset (drawn with the pseudo-classes in turn, so every
prefix is stratified), finds their top-1 pseudo-class (the target), explains them with every
method (stage explain) and runs the perturbation test on those maps (stage evaluate). Rounds stop
once the primary method's faithfulness gap is known within ``options.eval_precision``
(:func:`probe.evaluation.precise_enough`) or the subset is used up; an image whose clean prediction
is its target needs no clean forward pass in the test.

Under torchrun the work of a round is dealt to the ranks in tasks of one batch (and one method)
on a grid that does not depend on the number of ranks, and every rank gets every result, so one
process and several give the same figures (:meth:`unsupervised.distributed.Group.map`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from probe.evaluation import (
    FAITHFULNESS_REMOVAL,
    STEPS,
    FaithfulnessResult,
    PerturbationCurve,
    mean_halfwidth,
    perturbation_hits,
    precise_enough,
)
from probe.progress import inner_bars_off
from unsupervised.distributed import Group

from .explain import Explained, explain_maps, predict
from .images import MaskReader, load_batch
from .options import EVAL_ROUND, ProbeOptions
from .prepare import Prepared
from .selection import evaluation_rows
from .stages import StageClock, WorkBar

log = logging.getLogger("probe.pipeline")


@dataclass(frozen=True)
class _Done:
    """One task's output: a batch's maps by one method and their perturbation hits, with the seconds each took."""

    maps: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    explain_s: float
    evaluate_s: float


def batches(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive batches of ``size`` covering ``n`` items."""
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def round_size(options: ProbeOptions) -> int:
    """Images per round: :data:`EVAL_ROUND`, or one explanation batch when that is larger (a GPU's)."""
    return max(EVAL_ROUND, options.explain_batch)


def subset(prep: Prepared, options: ProbeOptions, masks: MaskReader | None) -> np.ndarray:
    """Dataset indices of the evaluation subset, in the order drawn (single-object images when masks exist)."""
    usable = (lambda row: masks.objects(int(prep.rows[row])) < 2) if masks is not None else None
    rows = evaluation_rows(
        prep.clusters,
        prep.pseudo.k,
        per_class=options.eval_per_class,
        cap=options.eval_images,
        seed=options.seed,
        usable=usable,
    )
    return prep.rows[rows]


def _task(
    prep: Prepared, images: torch.Tensor, target: torch.Tensor, options: ProbeOptions
) -> Callable[[tuple[int, int, str]], _Done]:
    def run(item: tuple[int, int, str]) -> _Done:
        start, stop, method = item
        x, t = images[start:stop], target[start:stop]
        began = time.perf_counter()
        maps = explain_maps(prep, x, t, method, options)
        explained = time.perf_counter()
        curves = perturbation_hits(
            prep.model,
            x,
            maps,
            t,
            normalization=prep.backbone.preprocessing.normalization,
            batch_size=options.batch_size,
            device=options.device,
            removal=FAITHFULNESS_REMOVAL,
            clean=torch.ones(stop - start, dtype=torch.bool),
        )
        return _Done(
            maps, curves["positive"].hits, curves["negative"].hits, explained - began, time.perf_counter() - explained
        )

    return run


def gaps(curves: FaithfulnessResult) -> torch.Tensor:
    """Each image's faithfulness gap: its negative minus its positive perturbation AUC."""
    return curves.negative.per_image_auc() - curves.positive.per_image_auc()


def _round(
    prep: Prepared,
    images: torch.Tensor,
    methods: tuple[str, ...],
    options: ProbeOptions,
    *,
    clock: StageClock,
    group: Group,
    bar: WorkBar,
    task_cost: Callable[[str], float],
    after_forward: Callable[[float], None] | None,
) -> tuple[torch.Tensor, list[tuple[str, _Done]]]:
    """One round: the images' targets, then every (batch, method) task. Returns the targets and the tasks'
    outputs with their method; ``after_forward(seconds per image)`` once the clean forward pass is timed."""
    batch = options.explain_batch
    grid = batches(images.shape[0], batch)
    began = time.perf_counter()
    target = torch.cat(
        group.map(lambda b: predict(prep.model, images[b[0] : b[1]], batch=batch, device=options.device), grid)
    )
    forward_s = time.perf_counter() - began
    clock.add("explain", forward_s)
    bar.advance(images.shape[0])
    if after_forward is not None:
        after_forward(forward_s / images.shape[0])
    tasks = [(start, stop, m) for m in methods for start, stop in grid]
    run = _task(prep, images, target, options)

    def tracked(item: tuple[int, int, str]) -> _Done:
        result = run(item)
        bar.advance((item[1] - item[0]) * task_cost(item[2]))
        return result

    began = time.perf_counter()
    results = group.map(tracked, tasks)
    _split_time(clock, results, time.perf_counter() - began)
    bar.advance(
        sum(
            (stop - start) * task_cost(m)
            for i, (start, stop, m) in enumerate(tasks)
            if i % group.world_size != group.rank
        )
    )  # the other ranks' share, now gathered
    return target, [(m, result) for (_, _, m), result in zip(tasks, results)]


def measure(
    prep: Prepared,
    methods: tuple[str, ...],
    indices: np.ndarray,
    options: ProbeOptions,
    *,
    masks: MaskReader | None,
    clock: StageClock,
    group: Group,
    bar: WorkBar,
    task_cost: Callable[[str], float],
    on_first_round: Callable[[float], None] | None = None,
) -> Explained:
    """Explain and perturb ``indices`` (the subset, in order) round by round until precise enough.

    ``task_cost(method)`` is the forward passes per image of one method's map and perturbation test (the
    bar advances by it); ``on_first_round(seconds per forward pass)`` is called once the first round's
    clean forward pass has been timed, before any map is computed (the stage's estimate is printed there).
    """
    size = round_size(options)
    parts: dict[str, list[_Done]] = {m: [] for m in methods}
    kept, targets, rounds = [], [], 0
    halfwidth = float("inf")
    with inner_bars_off():
        while rounds * size < len(indices):
            chunk = indices[rounds * size : (rounds + 1) * size]
            began = time.perf_counter()
            images = load_batch(prep.data, chunk, device=options.device)
            clock.add("explain", time.perf_counter() - began)
            target, done = _round(
                prep,
                images,
                methods,
                options,
                clock=clock,
                group=group,
                bar=bar,
                task_cost=task_cost,
                after_forward=on_first_round if rounds == 0 else None,
            )
            for m, result in done:
                parts[m].append(result)
            kept.append(images.cpu())
            targets.append(target)
            rounds += 1
            per_image = gaps(_curves(parts[methods[0]]))
            halfwidth = mean_halfwidth(per_image)
            if precise_enough(per_image, options.eval_precision):
                break
    evaluated = indices[: sum(t.shape[0] for t in targets)]
    all_images = torch.cat(kept)
    image_size = (int(all_images.shape[-2]), int(all_images.shape[-1]))
    object_masks = masks.union(evaluated.tolist(), image_size) if masks is not None else None
    log.info(
        "explain + evaluate %s: %d of %d images in %d round(s), %s gap known within ±%.3f",
        prep.name,
        len(evaluated),
        len(indices),
        rounds,
        methods[0],
        halfwidth,
    )
    return Explained(
        indices=evaluated,
        images=all_images,
        masks=object_masks,
        target=torch.cat(targets),
        maps={m: torch.cat([p.maps for p in parts[m]]) for m in methods},
        faithfulness={m: _curves(parts[m]) for m in methods},
        members=[],
        gap_halfwidth=halfwidth,
    )


def _curves(parts: list[_Done]) -> FaithfulnessResult:
    return FaithfulnessResult(
        positive=PerturbationCurve("positive", STEPS, torch.cat([p.positive for p in parts])),
        negative=PerturbationCurve("negative", STEPS, torch.cat([p.negative for p in parts])),
    )


def _split_time(clock: StageClock, results: list[_Done], seconds: float) -> None:
    """Book a round's wall-clock ``seconds`` to stages explain and evaluate in proportion to the work done."""
    explain_s = sum(r.explain_s for r in results)
    evaluate_s = sum(r.evaluate_s for r in results)
    share = explain_s / (explain_s + evaluate_s) if explain_s + evaluate_s > 0 else 0.5
    clock.add("explain", seconds * share)
    clock.add("evaluate", seconds * (1 - share))
