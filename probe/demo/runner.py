"""``probe demo``: the main job on the built-in synthetic world with every shipped reference backbone.

The world (``probe.demo.world``) is written to ``OUT/world`` (reused when it is already there),
every shipped checkpoint is probed with k = the number of categories: the ResNets (explained with
AGF) against one random-init ResNet, the ViT (explained with transformer attribution) against one
random-init ViT of its configuration. One report: ``OUT/report.html`` and ``OUT/metrics.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import backbones
from probe.errors import ProbeValueError
from probe.pipeline.options import MethodDefaults, ProbeOptions
from probe.pipeline.session import run_session
from probe.pipeline.summary import closing_summary
from probe.progress import progress_enabled
from probe.report import RunResults
from unsupervised import ImageFolderData

log = logging.getLogger("probe.demo")

#: Images in the demo world (the budget: everything in 5 minutes on 2 CPU cores).
DEMO_IMAGES = 1200
#: The demo's methods by backbone kind: the run defaults, with saliency as a third CNN baseline.
DEMO_METHODS = (
    MethodDefaults("CNNs", "agf", ("gradcam", "integrated_gradients", "saliency")),
    MethodDefaults("ViTs", "transformer_attribution", ("attention_rollout", "raw_attention")),
)
#: Settings that keep the demo inside its budget: 12 evaluated images per pseudo-class, and integrated
#: gradients with 16 steps instead of 50 (at 50 it alone took longer than everything else together).
DEMO_OPTIONS = {
    "eval_per_class": 12,
    "method_defaults": DEMO_METHODS,
    "method_options": {"integrated_gradients": {"n_steps": 16}},
}
WORLD_DIR = "world"


#: The shipped backbone whose answer is known (trained on the categories): the demo's positive control.
POSITIVE_CONTROL = "supervised"


def shipped_checkpoints() -> list[tuple[str, Path]]:
    """``(name, path)`` of every reference checkpoint shipped in ``probe/demo/checkpoints``."""
    from probe.demo.checkpoints import FILES, checkpoint_path

    return present([(name, checkpoint_path(name)) for name in FILES])


def present(checkpoints: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """``checkpoints`` unchanged if every file exists; else an error naming the missing ones."""
    missing = [str(path) for _, path in checkpoints if not Path(path).is_file()]
    if missing:
        raise ProbeValueError(
            f"shipped demo checkpoint(s) missing: {', '.join(missing)} "
            "(rebuild them with scripts/build_demo_checkpoints.py)"
        )
    return checkpoints


def build_world(directory: Path, *, images: int, seed: int) -> tuple[Path, Path]:
    """Write (or reuse) the synthetic world in ``directory``; returns its image and mask folders.

    The images come from the held-out world the checkpoints' manifest measurements use
    (world seed ``EVAL_SEED + seed``), never from the worlds the backbones were trained on.
    """
    from probe.demo.measure import EVAL_SEED
    from probe.demo.world import write_image_folder

    write_image_folder(directory, images, EVAL_SEED + seed, progress=progress_enabled())
    return directory / "images", directory / "masks"


def probe_world(
    images: str | os.PathLike,
    masks: str | os.PathLike | None,
    checkpoints: Sequence[tuple[str, str | os.PathLike]],
    *,
    out: str | os.PathLike,
    positive_controls: Sequence[str] = (),
    **options: Any,
) -> RunResults:
    """Probe every ``(name, checkpoint)`` on one labelled image folder, k = its number of categories, each
    architecture against one random-init control of its own; write one report to ``out``.

    ``positive_controls``: names of the backbones known to be semantic (role "positive control").
    ``options`` are :class:`~probe.pipeline.ProbeOptions` fields other than k (e.g. ``device``, ``seed``,
    ``eval_images``, ``baselines``).
    """
    with run_session(out) as session:
        data = ImageFolderData(images, masks=masks)
        if len(data.class_names) < 2:
            raise ProbeValueError(f"{data.root}: the demo needs an image folder with at least 2 category folders")
        chosen = ProbeOptions(k=len(data.class_names), **options)
        loaded = [(name, backbones.load(path, device=chosen.device)) for name, path in checkpoints]
        settings = {"world": str(data.root.parent), "backbones": ", ".join(name for name, _ in loaded)}
        return session.probe(loaded, data, chosen, settings=settings, positive_controls=positive_controls)


def run_demo(out: str | os.PathLike, **options: Any) -> RunResults:
    """World, shipped backbones, features, clustering, heads, explanations, evaluation, report; prints a summary.

    ``options`` (e.g. ``device``, ``seed``) are :class:`~probe.pipeline.ProbeOptions` fields; the world
    is drawn with the same seed.
    """
    out = Path(out)
    checkpoints = shipped_checkpoints()
    seed = options.get("seed", ProbeOptions.seed)
    world_images, world_masks = build_world(out / WORLD_DIR, images=DEMO_IMAGES, seed=seed)
    results = probe_world(
        world_images,
        world_masks,
        checkpoints,
        out=out,
        positive_controls=[POSITIVE_CONTROL],
        **{**DEMO_OPTIONS, **options},
    )
    print(closing_summary(results, str(out)))
    return results
