"""Already-loaded backbones of one architecture, each compared with one random-init control on one
dataset: stages extract, cluster and head (:mod:`.prepare`), explain and evaluate, then the verdicts.
``probe run`` and ``probe demo`` differ only in what they load before this."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import backbones
from probe.errors import ParameterError, ProbeValueError
from probe.progress import progress_enabled
from probe.report import BackboneResults, RunResults, SkippedImage
from unsupervised import ImageFolderData
from unsupervised.distributed import Group

from .evaluate import evaluate
from .explain import cards
from .images import MaskReader
from .measure import measure, round_size, subset
from .options import ProbeOptions
from .plan import PERTURBATION_COST, map_cost, plan
from .prepare import Prepared, prepare
from .saved import backbone_dir
from .stages import StageClock, WorkBar
from .verdicts import judge_run

log = logging.getLogger("probe.pipeline")

CONTROL_NAME = "random-init control"
CACHE_DIR = "cache"


def check_backbone(backbone: backbones.Backbone, methods: Sequence[str], name: str) -> None:
    """Refuse AGF on an architecture the engine does not cover (ViTs, SimCLR v2 sk1), before any work."""
    if "agf" in methods and not backbone.agf_supported:
        raise ParameterError(
            "method", f"agf: the AGF engine does not cover {name} (architecture {backbone.arch}); explain it with "
            "another method, e.g. --method integrated_gradients --baselines saliency"
        )


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _skipped(data: ImageFolderData, prepared: Sequence[Prepared]) -> list[SkippedImage]:
    """Files left out: the folder scan's and the decoding failures (the same files for every backbone)."""
    found = dict(data.skipped)
    for prep in prepared:
        found.update(prep.features.skipped)
    return [SkippedImage(_relative(path, data.root), reason) for path, reason in sorted(found.items())]


def _explain_and_evaluate(prep: Prepared, options: ProbeOptions, *, control: Prepared | None, clock: StageClock,
                          group: Group) -> BackboneResults:
    """Stages explain and evaluate of one backbone (a probe, or a control when ``control`` is None), after
    saying what they will compute and about how long it will take."""
    masks = MaskReader(prep.data) if prep.data.masks_root is not None else None
    methods = options.methods_of(prep.role)
    indices = subset(prep, options, masks)
    card_images = options.card_members * prep.pseudo.k if prep.role == "probe" else 0
    sanity_images = options.sanity_images if prep.role == "probe" else 0
    work = partial(plan, prep.name, methods, options, cap=len(indices), first=min(round_size(options), len(indices)),
                   card_images=card_images, control_cards=control is not None, sanity_images=sanity_images)
    bar = WorkBar(f"explain + evaluate {prep.name}", work(seconds_per_forward=1.0).forwards(len(indices)),
                  show=group.is_main)
    show = group.is_main and progress_enabled()

    def announce(seconds_per_forward: float) -> None:
        message = work(seconds_per_forward=seconds_per_forward).describe()
        log.info("%s", message)
        if show:
            print(message, file=sys.stderr)

    try:
        explained = measure(prep, methods, indices, options, masks=masks, clock=clock, group=group, bar=bar,
                            task_cost=lambda m: map_cost(m, options) + PERTURBATION_COST, on_first_round=announce)
        budget = work(seconds_per_forward=1.0)
        bar.resize(budget.forwards(len(explained.indices)))
        if card_images:
            with clock("explain", f"{prep.name} cards"):
                explained.members = cards(prep, explained, control, options, group)
            bar.advance(budget.card_forwards)
        results = evaluate(prep, explained, options, methods=methods, masks=masks, control=control, clock=clock)
        bar.advance(budget.sanity_forwards)
        return results
    finally:
        bar.close()


def probe_backbones(
    probes: Sequence[tuple[str, backbones.Backbone]],
    data: ImageFolderData,
    options: ProbeOptions,
    *,
    out: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    clock: StageClock | None = None,
    settings: dict[str, str | int | float] | None = None,
    group: Group | None = None,
) -> RunResults:
    """Probe each ``(name, backbone)`` on ``data`` against one random-init control (role "control").

    The control is ``backbones.random_like(first backbone, options.seed)``, so all backbones must
    share one architecture; how to rebuild it is recorded. Clusters and heads are saved under
    ``out/backbones/<name>/``. The report is not written (see :class:`~probe.pipeline.session.RunSession`);
    ``RunResults`` holds the verdicts and ``timings`` the stages so far. Under torchrun (``group``) every
    rank takes its share of the work and gets the same results; only rank 0 writes files.
    """
    clock = clock or StageClock()
    group = group or Group()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out / CACHE_DIR
    archs = sorted({backbone.arch for _, backbone in probes})
    if len(archs) != 1:
        raise ProbeValueError(f"the probed backbones must share one architecture for one control; got {archs}")
    for name, backbone in probes:
        check_backbone(backbone, options.methods, name)
    if options.k > len(data):
        raise ParameterError("k", f"{options.k} is larger than the number of images ({len(data)}) in {data.root}")
    first = probes[0][1]
    control = backbones.random_like(first, options.seed)
    reference = prepare(CONTROL_NAME, "control", control, data, options, state_dir=backbone_dir(out, CONTROL_NAME),
                        cache_dir=cache, clock=clock, group=group, control_of=first, control_seed=options.seed)
    results, prepared = [], [reference]
    for name, backbone in probes:
        prep = prepare(name, "probe", backbone, data, options, state_dir=backbone_dir(out, name), cache_dir=cache,
                       clock=clock, group=group)
        results.append(_explain_and_evaluate(prep, options, control=reference, clock=clock, group=group))
        prepared.append(prep)
    results.append(_explain_and_evaluate(reference, options, control=None, clock=clock, group=group))
    run = RunResults(
        backbones=results, method=options.method, dataset=data.root.name, num_images=len(prepared[-1].features),
        skipped=_skipped(data, prepared), settings=dict(settings or {}), timings=clock.ordered(),
    )
    run.verdicts = judge_run(run)
    return run
