"""Already-loaded backbones of one architecture, each compared with one random-init control on one
dataset: stages extract, cluster and head (:mod:`.prepare`), explain and evaluate, then the verdicts.
``probe run`` and ``probe demo`` differ only in what they load before this."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import backbones
from probe.errors import ParameterError, ProbeValueError
from probe.report import BackboneResults, RunResults, SkippedImage
from unsupervised import ImageFolderData

from .evaluate import evaluate
from .explain import explain
from .images import MaskReader
from .options import ProbeOptions
from .prepare import Prepared, prepare
from .saved import backbone_dir
from .stages import StageClock
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


def _explain_and_evaluate(prep: Prepared, options: ProbeOptions, *, control: Prepared | None,
                          clock: StageClock) -> BackboneResults:
    """Stages explain and evaluate of one backbone (a probe, or a control when ``control`` is None)."""
    masks = MaskReader(prep.data) if prep.data.masks_root is not None else None
    explained = explain(prep, options, masks=masks, control=control, clock=clock)
    return evaluate(prep, explained, options, masks=masks, control=control, clock=clock)


def probe_backbones(
    probes: Sequence[tuple[str, backbones.Backbone]],
    data: ImageFolderData,
    options: ProbeOptions,
    *,
    out: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    clock: StageClock | None = None,
    settings: dict[str, str | int | float] | None = None,
    positive_controls: Collection[str] = (),
) -> RunResults:
    """Probe each ``(name, backbone)`` on ``data`` against one random-init control (role "control").

    Backbones named in ``positive_controls`` (known to be semantic, e.g. the demo's supervised one) take
    the role "positive control": judged like every probed backbone, labelled as what they are.

    The control is ``backbones.random_like(first backbone, options.seed)``, so all backbones must
    share one architecture; how to rebuild it is recorded. Clusters and heads are saved under
    ``out/backbones/<name>/``. The report is not written (see :class:`~probe.pipeline.session.RunSession`);
    ``RunResults`` holds the verdicts and ``timings`` the stages so far.
    """
    clock = clock or StageClock()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out / CACHE_DIR
    unknown = sorted(set(positive_controls) - {name for name, _ in probes})
    if unknown:
        raise ProbeValueError(f"positive controls {unknown} are not among the probed backbones")
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
                        cache_dir=cache, clock=clock, control_of=first, control_seed=options.seed)
    results, prepared = [], [reference]
    for name, backbone in probes:
        role = "positive control" if name in positive_controls else "probe"
        prep = prepare(name, role, backbone, data, options, state_dir=backbone_dir(out, name), cache_dir=cache,
                       clock=clock)
        results.append(_explain_and_evaluate(prep, options, control=reference, clock=clock))
        prepared.append(prep)
    results.append(_explain_and_evaluate(reference, options, control=None, clock=clock))
    run = RunResults(
        backbones=results, method=options.method, dataset=data.root.name, num_images=len(prepared[-1].features),
        skipped=_skipped(data, prepared), settings=dict(settings or {}), timings=clock.ordered(),
    )
    run.verdicts = judge_run(run)
    return run
