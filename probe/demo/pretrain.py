"""Train the demo's reference backbones on the synthetic world (``probe pretrain``).

A recipe fixes everything a run depends on (world, views, objective, optimiser, budget);
with the recipe and a seed, a run on the same torch build and thread count writes the same
bytes. Long runs keep a ``<out>.partial`` state every few hundred steps and resume from it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import backbones
from probe.devices import resolve_device
from probe.errors import ProbeValueError
from probe.fileio import atomic_path
from probe.progress import progress_enabled

from .augment import AugmentConfig, make_views, swap_backgrounds
from .measure import EvalSet, evaluate, preprocess
from .objectives import OBJECTIVES, Objective
from .world import WorldConfig, render_arrays, render_backgrounds


@dataclass(frozen=True)
class Recipe:
    """Everything a pretraining run depends on, apart from the seed and the device."""

    method: str
    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.03  # fraction of the steps with a linear learning-rate ramp
    world: WorldConfig = WorldConfig()
    augment: AugmentConfig = AugmentConfig()
    arch: str = "resnet_small"
    arch_kwargs: dict = field(default_factory=dict)
    objective_kwargs: dict = field(default_factory=dict)
    pool_size: int = 20000  # training images, drawn once from the world with the run's seed
    eval_every: int = 250
    eval_size: int = 2000
    save_every: int = 200

    def to_json(self) -> dict:
        return asdict(self)


#: Views of every shipped recipe: crops of 20-50 % of the image, so objects in a 32-pixel view keep
#: about the size they have in the 64-pixel images the demo probes.
OBJECT_SCALE_VIEWS = AugmentConfig(scale=(0.2, 0.5))
#: Views of the ViT: it is probed at 64 px (an 8x8 grid of 8-px patches), so it trains on 64-px views of
#: 60-100 % crops, objects magnified at most about 1.3 times.
VIT_VIEWS = AugmentConfig(size=64, scale=(0.6, 1.0))
#: The recipes of the shipped checkpoints (docs/DEMO_WORLD.md has the trials that chose them).
RECIPES: dict[str, Recipe] = {
    "simclr": Recipe("simclr", steps=2400, batch_size=128, augment=OBJECT_SCALE_VIEWS),
    "moco": Recipe(
        "moco",
        steps=2400,
        batch_size=128,
        augment=OBJECT_SCALE_VIEWS,
        objective_kwargs={"temperature": 0.2, "queue_size": 1024},
    ),
    "byol": Recipe("byol", steps=800, batch_size=128, lr=1e-3, augment=OBJECT_SCALE_VIEWS),
    "supervised": Recipe("supervised", steps=800, batch_size=128, augment=OBJECT_SCALE_VIEWS),
    "supervised_vit": Recipe(
        "supervised",
        steps=2000,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.05,
        warmup=0.05,
        augment=VIT_VIEWS,
        arch="vit_mini_patch8",
        arch_kwargs={"img_size": 64},
    ),
}


def recipe(name: str, **overrides: Any) -> Recipe:
    """The documented recipe called ``name`` (a method, or a method with an architecture, e.g.
    ``supervised_vit``), with fields replaced by ``overrides``."""
    if name not in RECIPES:
        raise ProbeValueError(f"unknown pretraining recipe {name!r}; known: {', '.join(RECIPES)}")
    return replace(RECIPES[name], **overrides)


def _schedule(r: Recipe) -> Any:
    warm = max(1, int(r.warmup * r.steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, r.steps - warm)))

    return factor


def build_objective(r: Recipe, generator: torch.Generator) -> Objective:
    """The objective of ``r`` around a fresh backbone (initialised from torch's global seed)."""
    backbone = backbones.create(r.arch, **r.arch_kwargs)
    kwargs = dict(r.objective_kwargs)
    if r.method == "moco":
        kwargs.update(generator=generator, arch=r.arch)
    return OBJECTIVES[r.method](backbone, len(r.world.categories), **kwargs)


def _progress_enabled(progress: bool) -> bool:
    return progress and progress_enabled()


def _save_partial(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def pretrain(
    r: Recipe,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    log: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> dict:
    """Train ``r`` with ``seed`` and write the checkpoint in the method's native layout to ``out``.

    Returns a summary: steps, wall time, the held-out measurements every ``eval_every`` steps
    (``history``) and at the end (``metrics``). ``log`` appends one JSON line per measurement;
    ``cache_dir`` keeps the rendered training and held-out images for the next run.
    """
    from tqdm import tqdm

    out = Path(out)
    dev = resolve_device(device)
    partial = out.with_name(out.name + ".partial")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # channels-last is ~1.7x faster for these small convolutions on CPU (oneDNN) and fine on CUDA
    # torch's stubs lack Module.to's (device, memory_format=...) form, which it accepts at run time
    objective = build_objective(r, gen).to(dev, memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(r))
    step, history, elapsed = 0, [], 0.0
    if partial.exists():
        state = torch.load(partial, map_location=dev, weights_only=True)
        if state.get("recipe") == json.dumps(r.to_json()) and state.get("seed") == seed:
            objective.load_state_dict(state["objective"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            step, history, elapsed = state["step"], json.loads(state["history"]), state["elapsed"]

    show = _progress_enabled(progress)
    pool = render_arrays(r.world, r.pool_size, seed, progress=show, cache_dir=cache_dir)
    images = torch.from_numpy(pool["images"]).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(pool[objective.labels])
    masks = torch.from_numpy(pool["masks"])
    swap = r.augment.background_swap > 0
    fresh = torch.from_numpy(render_backgrounds(r.world, 2000, seed)).permute(0, 3, 1, 2).contiguous() if swap else None
    held_out = EvalSet.build(r.world, r.eval_size, cache_dir=cache_dir) if r.eval_size > 0 else None

    def measure(at: int, data: EvalSet) -> dict:
        entry = {"step": at, **evaluate(objective.backbone, objective.normalize, data, dev, seed)}
        history.append(entry)
        if log is not None:
            with open(log, "a") as handle:
                handle.write(json.dumps({"method": r.method, "seed": seed, **entry}) + "\n")
        return entry

    objective.train()
    started = time.perf_counter() - elapsed
    bar = tqdm(total=r.steps, initial=step, desc=f"pretrain {r.method}", unit="step", disable=not show)
    while step < r.steps:
        index = torch.randint(images.shape[0], (r.batch_size,), generator=gen)
        batch = images[index].to(dev)
        batch_masks = masks[index].to(dev) if swap else None
        views = []
        for _ in range(objective.views):
            source = batch
            if batch_masks is not None and fresh is not None:  # both are there when swap is on
                source = swap_backgrounds(batch, batch_masks, fresh, r.augment.background_swap, gen)
            view = preprocess(make_views(source, r.augment, gen), objective.normalize)
            views.append(view.contiguous(memory_format=torch.channels_last))
        loss, logs = objective.loss(views, labels[index].to(dev))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        objective.after_step(step / r.steps)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()} | ({"nmi": history[-1]["nmi"]} if history else {}))
        if held_out is not None and r.eval_every > 0 and step % r.eval_every == 0 and step < r.steps:
            measure(step, held_out)
        if r.save_every > 0 and step % r.save_every == 0 and step < r.steps:
            _save_partial(
                partial,
                {
                    "recipe": json.dumps(r.to_json()),
                    "seed": seed,
                    "step": step,
                    "elapsed": time.perf_counter() - started,
                    "objective": objective.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": gen.get_state(),
                    "history": json.dumps(history),
                },
            )
    bar.close()
    wall = time.perf_counter() - started
    metrics = measure(step, held_out) if held_out is not None else {}
    with atomic_path(out) as tmp:
        torch.save(objective.checkpoint(step), tmp)
    partial.unlink(missing_ok=True)
    return {
        "method": r.method,
        "seed": seed,
        "steps": step,
        "wall_s": round(wall, 1),
        "metrics": metrics,
        "history": history,
    }


def control_metrics(r: Recipe, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Held-out measurements of a randomly initialised backbone of ``r``'s architecture (the negative control)."""
    torch.manual_seed(seed)
    backbone = backbones.create(r.arch, **r.arch_kwargs).to(resolve_device(device))
    return evaluate(backbone, True, EvalSet.build(r.world, r.eval_size), resolve_device(device), seed)
