"""Already-loaded backbones, grouped by architecture, each group compared with one random-init control
of its architecture on one dataset: stages extract, cluster and head (:mod:`.prepare`), explain and
evaluate, then the verdicts. ``probe run`` (one backbone) and ``probe demo`` (ResNets and a ViT) differ
only in what they load before this."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

import backbones
from probe.errors import ParameterError, ProbeValueError
from probe.progress import progress_enabled
from probe.report import BackboneResults, RunResults, SkippedImage
from unsupervised import ImageFolderData
from unsupervised.distributed import Group

from .evaluate import evaluate
from .explain import cards
from .images import MaskReader, load_batch
from .measure import measure, round_size, subset
from .methods import settle_methods
from .options import ProbeOptions
from .plan import PERTURBATION_COST, map_cost, plan, thread_advice
from .prepare import Prepared, prepare
from .saved import backbone_dir
from .side_by_side import side_by_side
from .sizing import TRIAL_IMAGES, sized_for_device
from .stages import StageClock, WorkBar
from .verdicts import judge_run

log = logging.getLogger("probe.pipeline")

CONTROL_NAME = "random-init control"
CACHE_DIR = "cache"


@dataclass(frozen=True)
class ArchGroup:
    """Backbones of one architecture (same constructor arguments), their control and their settled methods."""

    probes: tuple[tuple[str, backbones.Backbone], ...]
    control_name: str
    options: ProbeOptions

    @property
    def arch(self) -> str:
        return self.probes[0][1].arch

    def describe_control(self) -> str:
        return f"{self.control_name}: random init of {self.arch}, seed {self.options.seed}"


def _architecture(backbone: backbones.Backbone) -> tuple[str, str]:
    return backbone.arch, repr(sorted(backbone.arch_kwargs.items()))


def group_by_arch(probes: Sequence[tuple[str, backbones.Backbone]], options: ProbeOptions) -> list[ArchGroup]:
    """``probes`` grouped by architecture in the order they first appear, each group with its methods
    settled (refusing, before any work, a given method that cannot explain one of them) and the name of
    its control: "random-init control" for the first group, "random-init control (<arch>)" for the others
    (so adding a group never renames the first one's control)."""
    by_arch: dict[tuple[str, str], list[tuple[str, backbones.Backbone]]] = {}
    for name, backbone in probes:
        by_arch.setdefault(_architecture(backbone), []).append((name, backbone))
    groups: list[ArchGroup] = []
    taken = {name for name, _ in probes}
    for members in by_arch.values():
        settled = [settle_methods(options, backbone, name) for name, backbone in members][0]  # each one checked
        base = CONTROL_NAME if not groups else f"{CONTROL_NAME} ({members[0][1].arch})"
        control, count = base, 1
        while control in taken:
            count += 1
            control = f"{base} #{count}"
        taken.add(control)
        groups.append(ArchGroup(tuple(members), control, settled))
    return groups


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


def _explain_and_evaluate(
    prep: Prepared, options: ProbeOptions, *, control: Prepared | None, clock: StageClock, group: Group
) -> BackboneResults:
    """Stages explain and evaluate of one backbone (a probe, or a control when ``control`` is None), after
    saying what they will compute and about how long it will take."""
    masks = MaskReader(prep.data) if prep.data.masks_root is not None else None
    methods = options.methods_of(prep.role)
    indices = subset(prep, options, masks)
    if torch.device(options.device).type == "cuda":
        options = sized_for_device(prep, load_batch(prep.data, indices[:TRIAL_IMAGES]), methods, options, group)
    judged = prep.role != "control"
    card_images = options.card_members * prep.pseudo.k if judged else 0
    sanity_images = options.sanity_images if judged else 0
    work = partial(
        plan,
        prep.name,
        methods,
        options,
        cap=len(indices),
        first=min(round_size(options), len(indices)),
        card_images=card_images,
        control_cards=control is not None,
        sanity_images=sanity_images,
    )
    bar = WorkBar(
        f"explain + evaluate {prep.name}", work(seconds_per_forward=1.0).forwards(len(indices)), show=group.is_main
    )
    show = group.is_main and progress_enabled()

    def announce(seconds_per_forward: float) -> None:
        message = work(seconds_per_forward=seconds_per_forward).describe() + thread_advice(
            os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, os.cpu_count() or 1, torch.get_num_threads()
        )
        log.info("%s", message)
        if show:
            print(message, file=sys.stderr)

    try:
        explained = measure(
            prep,
            methods,
            indices,
            options,
            masks=masks,
            clock=clock,
            group=group,
            bar=bar,
            task_cost=lambda m: map_cost(m, options) + PERTURBATION_COST,
            on_first_round=announce,
        )
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


def _probe_arch(
    arch: ArchGroup,
    data: ImageFolderData,
    *,
    out: Path,
    cache: Path,
    clock: StageClock,
    positive_controls: Collection[str],
    group: Group,
) -> tuple[list[BackboneResults], list[Prepared]]:
    """One architecture's backbones: its control prepared first, then each probe explained against it, then
    the control itself (prepared: the control first, then the probes)."""
    options, first = arch.options, arch.probes[0][1]
    control = backbones.random_like(first, options.seed)
    reference = prepare(
        arch.control_name,
        "control",
        control,
        data,
        options,
        state_dir=backbone_dir(out, arch.control_name),
        cache_dir=cache,
        clock=clock,
        group=group,
        control_of=first,
        control_seed=options.seed,
    )
    results, prepared = [], [reference]
    for name, backbone in arch.probes:
        role = "positive control" if name in positive_controls else "probe"
        prep = prepare(
            name,
            role,
            backbone,
            data,
            options,
            state_dir=backbone_dir(out, name),
            cache_dir=cache,
            clock=clock,
            group=group,
        )
        results.append(_explain_and_evaluate(prep, options, control=reference, clock=clock, group=group))
        prepared.append(prep)
    results.append(_explain_and_evaluate(reference, options, control=None, clock=clock, group=group))
    return results, prepared


def probe_backbones(
    archs: Sequence[ArchGroup],
    data: ImageFolderData,
    *,
    out: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    clock: StageClock | None = None,
    settings: dict[str, str | int | float] | None = None,
    positive_controls: Collection[str] = (),
    group: Group | None = None,
) -> RunResults:
    """Probe the backbones of every architecture group on ``data``, each group against its own random-init
    control (``backbones.random_like(first backbone, seed)``, role "control"; how to rebuild it is recorded).

    Backbones named in ``positive_controls`` (known to be semantic, e.g. the demo's supervised one) take
    the role "positive control": judged like every probed backbone, labelled as what they are.
    With several probed backbones, the same few images are explained by each (``side_by_side``).
    Clusters and heads are saved under ``out/backbones/<name>/``. The report is not written (see
    :class:`~probe.pipeline.session.RunSession`); ``RunResults`` holds the verdicts and ``timings`` the
    stages so far. Under torchrun (``group``) every rank takes its share of the work and gets the same
    results; only rank 0 writes files.
    """
    clock = clock or StageClock()
    group = group or Group()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out / CACHE_DIR
    unknown = sorted(set(positive_controls) - {name for arch in archs for name, _ in arch.probes})
    if unknown:
        raise ProbeValueError(f"positive controls {unknown} are not among the probed backbones")
    k = archs[0].options.k
    if k > len(data):
        raise ParameterError("k", f"{k} is larger than the number of images ({len(data)}) in {data.root}")
    results, prepared, probes = [], [], []
    for arch in archs:
        arch_results, arch_prepared = _probe_arch(
            arch, data, out=out, cache=cache, clock=clock, positive_controls=positive_controls, group=group
        )
        results += arch_results
        prepared += arch_prepared
        probes += [(prep, arch.options) for prep in arch_prepared[1:]]
    run = RunResults(
        backbones=results,
        dataset=data.root.name,
        num_images=len(prepared[-1].features),
        skipped=_skipped(data, prepared),
        settings=dict(settings or {}),
        timings=clock.ordered(),
        side_by_side=side_by_side(probes, clock=clock),
    )
    run.verdicts = judge_run(run)
    return run
