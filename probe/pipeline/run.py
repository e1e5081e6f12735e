"""``probe run``: checkpoint + image folder -> pseudo-classes -> explanations -> evaluated report.

:func:`run_probe` is the whole job on one checkpoint; :func:`probe_backbones` is the part
after loading: several already-loaded backbones on one already-built dataset, all compared
with one random-init control (what ``probe demo`` uses).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import backbones
from probe.errors import ProbeValueError
from probe.fileio import atomic_write_json, locked_output_dir
from probe.report import RunResults, SkippedImage, write_report
from unsupervised import DataError, ImageFolderData

from .assess import assess
from .clusters import Prepared, prepare
from .images import seeded_subset
from .options import EVAL_IMAGES, KMEANS_RESTARTS, ProbeOptions, resolve_device
from .saved import backbone_dir, promote_pending
from .stages import StageClock, run_log

log = logging.getLogger("probe.pipeline")

CONTROL_NAME = "random-init control"
CACHE_DIR = "cache"
LOG_FILE = "run.log"
TIMINGS_FILE = "timings.json"


def check_backbone(backbone: backbones.Backbone, methods: Sequence[str], name: str) -> None:
    """Refuse AGF on an architecture the engine does not cover (ViTs, SimCLR v2 sk1), before any work."""
    if "agf" in methods and not backbone.agf_supported:
        raise ProbeValueError(
            f"agf: the AGF engine does not cover {name} (architecture {backbone.arch}); explain it with "
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


def probe_backbones(
    probes: Sequence[tuple[str, backbones.Backbone]],
    control: backbones.Backbone,
    data: ImageFolderData,
    options: ProbeOptions,
    *,
    out: str | os.PathLike,
    control_of: backbones.Backbone,
    control_seed: int,
    cache_dir: str | os.PathLike | None = None,
    clock: StageClock | None = None,
    settings: dict | None = None,
) -> RunResults:
    """Probe each ``(name, backbone)`` on ``data`` against one random-init ``control`` (role "control").

    ``control`` is ``backbones.random_like(control_of, control_seed)``; both are recorded so the
    control can be rebuilt. Clusters and heads are saved under ``out/backbones/<name>/``. The
    report is not written (see :func:`write_run_report`); ``RunResults.timings`` holds the
    stages so far.
    """
    options.check()
    clock = clock or StageClock()
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out / CACHE_DIR
    for name, backbone in probes:
        check_backbone(backbone, options.methods, name)
    if options.k > len(data):
        raise DataError(f"--k {options.k} is larger than the number of images ({len(data)}) in {data.root}")
    reference = prepare(CONTROL_NAME, "control", control, data, options, state_dir=backbone_dir(out, CONTROL_NAME),
                        cache_dir=cache, clock=clock, control_of=control_of, control_seed=control_seed)
    results, prepared = [], [reference]
    for name, backbone in probes:
        prep = prepare(name, "probe", backbone, data, options, state_dir=backbone_dir(out, name), cache_dir=cache,
                       clock=clock)
        results.append(assess(prep, options, control=reference, clock=clock))
        prepared.append(prep)
    results.append(assess(reference, options, control=None, clock=clock))
    return RunResults(
        backbones=results, method=options.method, dataset=data.root.name, num_images=len(prepared[-1].features),
        skipped=_skipped(data, prepared), settings=dict(settings or {}), timings=clock.ordered(),
    )


def write_run_report(out: str | os.PathLike, results: RunResults, clock: StageClock) -> Path:
    """Write the report (stage "report") and move the run's pending pseudo-class state into place,
    then ``timings.json`` with every stage's wall-clock seconds.

    The timings stay out of metrics.json, which holds only what the inputs and seed determine;
    the report's own time is logged and added to ``results.timings`` afterwards. An earlier run's
    timings.json is removed first so it never sits beside another run's report (run.log keeps them).
    """
    (Path(out) / TIMINGS_FILE).unlink(missing_ok=True)
    with clock("report"):
        page = write_report(out, results)
        for backbone in results.backbones:  # this run's folders only, never another run's leftovers
            promote_pending(backbone_dir(Path(out), backbone.name))
    results.timings = clock.ordered()
    atomic_write_json(Path(out) / TIMINGS_FILE, {"seconds": results.timings})
    log.info("report written to %s", page)
    return page


def _name(weights: Path) -> str:
    name = weights.name
    for suffix in (".tar", ".pth", ".pt", ".ckpt", ".safetensors", ".torch", ".bin"):
        name = name.removesuffix(suffix)
    return name or weights.name


def run_probe(
    weights: str | os.PathLike,
    *,
    data: str | os.PathLike,
    k: int,
    out: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    format: str | None = None,
    arch: str | None = None,
    method: str = "agf",
    baselines: Sequence[str] = ("gradcam", "integrated_gradients"),
    max_images: int | None = None,
    eval_images: int = EVAL_IMAGES,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    restarts: int = KMEANS_RESTARTS,
) -> RunResults:
    """The main job: probe the checkpoint ``weights`` on the image folder ``data`` with ``k`` pseudo-classes.

    Writes ``out/report.html``, ``out/metrics.json``, ``out/figures/``, ``out/timings.json``, ``out/run.log``, the
    saved pseudo-classes under ``out/backbones/`` and (unless ``cache_dir``) the feature cache
    under ``out/cache``. The checkpoint is compared with a random-init control of the same
    architecture (``backbones.random_like(backbone, seed)``). Same seed, same metrics.json bytes.
    """
    resolved = resolve_device(device)
    options = ProbeOptions(k=k, method=method, baselines=tuple(baselines), eval_images=eval_images,
                           batch_size=batch_size, num_workers=num_workers, seed=seed, restarts=restarts,
                           device=resolved).check()
    if max_images is not None and max_images < 1:
        raise ProbeValueError(f"--max-images must be >= 1, got {max_images}")
    out = Path(out)
    with locked_output_dir(out), run_log(out / LOG_FILE):
        log.info("probe run: weights=%s data=%s masks=%s k=%d method=%s baselines=%s seed=%d device=%s",
                 weights, data, masks, k, method, ",".join(options.baselines), seed, resolved)
        dataset = seeded_subset(ImageFolderData(data, masks=masks), max_images, seed)
        backbone = backbones.load(weights, format=format, arch=arch, device=resolved)
        name = _name(Path(weights))
        control = backbones.random_like(backbone, seed)
        clock = StageClock()
        settings = {
            "checkpoint": str(weights), "format": backbone.format, "arch": backbone.arch, "k": k, "seed": seed,
            "methods": options.describe_methods(), "data": str(dataset.root),
            "masks": str(dataset.masks_root) if dataset.masks_root is not None else "none",
            "images used": f"{len(dataset)}" + (f" (seeded sample, --max-images {max_images})" if max_images else ""),
            "evaluated images": f"up to {options.eval_per_class} per pseudo-class, {options.eval_images} in all",
            "k-means": f"{options.restarts} restarts, lowest objective kept",
            "control": f"random init of {backbone.arch}, seed {seed}", "device": str(resolved),
        }
        results = probe_backbones([(name, backbone)], control, dataset, options, out=out, control_of=backbone,
                                  control_seed=seed, cache_dir=cache_dir, clock=clock, settings=settings)
        write_run_report(out, results, clock)
    return results
