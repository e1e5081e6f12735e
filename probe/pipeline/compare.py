"""Already-loaded backbones, grouped by architecture, each group compared with one random-init control
of its architecture on one dataset: stages extract, cluster and head (:mod:`.prepare`), explain and
evaluate, then the verdicts. ``probe run`` (one backbone) and ``probe demo`` (ResNets and a ViT) differ
only in what they load before this."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import backbones
from probe.errors import ParameterError, ProbeValueError
from probe.report import BackboneResults, RunResults, SkippedImage
from unsupervised import ImageFolderData

from .evaluate import evaluate
from .explain import explain
from .images import MaskReader
from .methods import settle_methods
from .options import ProbeOptions
from .prepare import Prepared, prepare
from .saved import backbone_dir
from .side_by_side import side_by_side
from .stages import StageClock
from .verdicts import judge_run

log = logging.getLogger("probe.pipeline")

CONTROL_NAME = "random-init control"
CACHE_DIR = "cache"


@dataclass(frozen=True)
class Group:
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


def group_backbones(probes: Sequence[tuple[str, backbones.Backbone]], options: ProbeOptions) -> list[Group]:
    """``probes`` grouped by architecture in the order they first appear, each group with its methods
    settled (refusing, before any work, a given method that cannot explain one of them) and the name of
    its control: "random-init control" for the first group, "random-init control (<arch>)" for the others
    (so adding a group never renames the first one's control)."""
    by_arch: dict[tuple[str, str], list[tuple[str, backbones.Backbone]]] = {}
    for name, backbone in probes:
        by_arch.setdefault(_architecture(backbone), []).append((name, backbone))
    groups, taken = [], {name for name, _ in probes}
    for members in by_arch.values():
        settled = [settle_methods(options, backbone, name) for name, backbone in members][0]  # each one checked
        base = CONTROL_NAME if not groups else f"{CONTROL_NAME} ({members[0][1].arch})"
        control, count = base, 1
        while control in taken:
            count += 1
            control = f"{base} #{count}"
        taken.add(control)
        groups.append(Group(tuple(members), control, settled))
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


def _explain_and_evaluate(prep: Prepared, options: ProbeOptions, *, control: Prepared | None,
                          clock: StageClock) -> BackboneResults:
    """Stages explain and evaluate of one backbone (a probe, or a control when ``control`` is None)."""
    masks = MaskReader(prep.data) if prep.data.masks_root is not None else None
    explained = explain(prep, options, masks=masks, control=control, clock=clock)
    return evaluate(prep, explained, options, masks=masks, control=control, clock=clock)


def _probe_group(group: Group, data: ImageFolderData, *, out: Path, cache: Path, clock: StageClock,
                 positive_controls: Collection[str]) -> tuple[list[BackboneResults], list[Prepared]]:
    """One group: its control prepared first, then each probe explained against it, then the control itself
    (prepared: the control first, then the probes)."""
    options, first = group.options, group.probes[0][1]
    control = backbones.random_like(first, options.seed)
    reference = prepare(group.control_name, "control", control, data, options,
                        state_dir=backbone_dir(out, group.control_name), cache_dir=cache, clock=clock,
                        control_of=first, control_seed=options.seed)
    results, prepared = [], [reference]
    for name, backbone in group.probes:
        role = "positive control" if name in positive_controls else "probe"
        prep = prepare(name, role, backbone, data, options, state_dir=backbone_dir(out, name), cache_dir=cache,
                       clock=clock)
        results.append(_explain_and_evaluate(prep, options, control=reference, clock=clock))
        prepared.append(prep)
    results.append(_explain_and_evaluate(reference, options, control=None, clock=clock))
    return results, prepared


def probe_backbones(
    groups: Sequence[Group],
    data: ImageFolderData,
    *,
    out: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    clock: StageClock | None = None,
    settings: dict[str, str | int | float] | None = None,
    positive_controls: Collection[str] = (),
) -> RunResults:
    """Probe every group's backbones on ``data``, each group against its own random-init control
    (``backbones.random_like(first backbone, seed)``, role "control"; how to rebuild it is recorded).

    Backbones named in ``positive_controls`` (known to be semantic, e.g. the demo's supervised one) take
    the role "positive control": judged like every probed backbone, labelled as what they are.
    With several probed backbones, the same few images are explained by each (``side_by_side``).
    Clusters and heads are saved under ``out/backbones/<name>/``. The report is not written (see
    :class:`~probe.pipeline.session.RunSession`); ``RunResults`` holds the verdicts and ``timings`` the
    stages so far.
    """
    clock = clock or StageClock()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out / CACHE_DIR
    unknown = sorted(set(positive_controls) - {name for group in groups for name, _ in group.probes})
    if unknown:
        raise ProbeValueError(f"positive controls {unknown} are not among the probed backbones")
    k = groups[0].options.k
    if k > len(data):
        raise ParameterError("k", f"{k} is larger than the number of images ({len(data)}) in {data.root}")
    results, prepared, probes = [], [], []
    for group in groups:
        group_results, group_prepared = _probe_group(group, data, out=out, cache=cache, clock=clock,
                                                       positive_controls=positive_controls)
        results += group_results
        prepared += group_prepared
        probes += [(prep, group.options) for prep in group_prepared[1:]]
    run = RunResults(
        backbones=results, dataset=data.root.name, num_images=len(prepared[-1].features),
        skipped=_skipped(data, prepared), settings=dict(settings or {}), timings=clock.ordered(),
        side_by_side=side_by_side(probes, clock=clock),
    )
    run.verdicts = judge_run(run)
    return run
