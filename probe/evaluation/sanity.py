"""Sanity check by cascading model-parameter randomisation (Adebayo et al., 2018).

The layers that own parameters are randomised one group at a time from the top (output)
down, cumulatively, on a deep copy of the model (the caller's model is never touched).
After each step the maps are recomputed for the same targets and compared with the
original maps by Spearman rank correlation. A method whose maps depend on what the model
learned must lose that similarity as the model is destroyed; a method that only reflects
the input (or a fixed random map) keeps it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from probe.devices import model_device
from probe.errors import ProbeValueError

from ._explain import ExplainFn, explain_in_batches, explainer
from ._tensors import check_targets, nanmean, progress, spearman_rows
from .intervals import Estimate, Resampling, with_value

#: At most this many randomisation steps by default (parameter layers are grouped to fit).
SANITY_MAX_STEPS = 8
#: The test passes when the mean similarity after randomising every layer is below this.
SANITY_MAX_FINAL_SIMILARITY = 0.5


@dataclass(frozen=True)
class SanityResult:
    """Similarity of the maps to the original ones after each cumulative randomisation step.

    ``steps[0]`` is ``"original"``; ``steps[j]`` names the layer group randomised at step j
    (on top of all earlier ones). ``similarity[n, j]`` is the Spearman correlation between
    image n's original map and its map at step j (1 at step 0).
    """

    steps: tuple[str, ...]
    similarity: torch.Tensor  # [N, S] float64

    @property
    def mean_similarity(self) -> list[float | None]:
        """Mean similarity per step (NaN entries left out)."""
        return [nanmean(self.similarity[:, j]) for j in range(self.similarity.shape[1])]

    def estimates(self, resampling: Resampling) -> list[Estimate | None]:
        """:attr:`mean_similarity` with 95 % intervals, the images resampled by ``resampling``."""
        return [with_value(mean, resampling.mean(self.similarity[:, j])) for j, mean in enumerate(self.mean_similarity)]

    @property
    def final_similarity(self) -> float | None:
        """Mean similarity once every layer is randomised."""
        return self.mean_similarity[-1]

    @property
    def passed(self) -> bool | None:
        """True when the final mean similarity is below :data:`SANITY_MAX_FINAL_SIMILARITY`."""
        final = self.final_similarity
        return None if final is None else final < SANITY_MAX_FINAL_SIMILARITY


def parameter_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, in registration order (input side first)."""
    return [name for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))]


def _runs(top_down: Sequence[str], depth: int) -> list[tuple[str, list[str]]]:
    """Contiguous runs of layers sharing their first ``depth`` name components, labelled by that prefix."""
    runs: list[tuple[str, list[str]]] = []
    for name in top_down:
        prefix = ".".join(name.split(".")[:depth])
        if runs and runs[-1][0] == prefix:
            runs[-1][1].append(name)
        else:
            runs.append((prefix, [name]))
    return runs


def layer_groups(top_down: Sequence[str], max_steps: int) -> list[tuple[str, list[str]]]:
    """Randomisation steps as (label, layer names), at most ``max_steps``, following the model's structure.

    Layers are grouped by their module-name prefix at the deepest level that still gives at most
    ``max_steps`` contiguous groups (e.g. ``fc``, ``layer4``, …, ``conv1`` for a torchvision ResNet).
    A model too flat for that (a long Sequential) is cut into ``max_steps`` near-equal runs.
    """
    if max_steps < 1:
        raise ProbeValueError(f"max_steps must be >= 1, got {max_steps}")
    deepest = max(len(name.split(".")) for name in top_down)
    best = None
    for depth in range(1, deepest + 1):
        runs = _runs(top_down, depth)
        if len(runs) > max_steps:
            break
        best = runs
    if best is not None:
        return best
    count = max_steps
    bounds = [round(i * len(top_down) / count) for i in range(count + 1)]
    chunks = [list(top_down[bounds[i] : bounds[i + 1]]) for i in range(count)]
    return [(c[0] if len(c) == 1 else f"{c[0]} … {c[-1]}", c) for c in chunks]


@torch.no_grad()
def randomize_layer(module: nn.Module, seed: int) -> None:
    """Redraw each own parameter of ``module`` from N(0, σ²), σ = the tensor's own std (1 if it is constant).

    Values come from a CPU generator seeded with ``seed``, so the result does not depend on
    the device; keeping each tensor's scale keeps activations in a sane range.
    """
    generator = torch.Generator().manual_seed(seed)
    for param in module.parameters(recurse=False):
        std = float(param.detach().float().std()) if param.numel() > 1 else 0.0
        sigma = std if std > 0 else 1.0
        fresh = torch.randn(param.shape, generator=generator, dtype=torch.float32) * sigma
        param.copy_(fresh.to(device=param.device, dtype=param.dtype))


def cascading_randomization(
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor | Sequence[int] | int,
    *,
    explain_fn: ExplainFn | None = None,
    method: str = "agf",
    seed: int = 0,
    max_steps: int = SANITY_MAX_STEPS,
    layers: Sequence[str] | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> SanityResult:
    """Cascading randomisation test of an explainer on ``images`` for fixed ``target`` classes.

    ``layers`` (bottom-up module names) defaults to :func:`parameter_layers`; they are
    randomised from the last one backwards in at most ``max_steps`` groups (:func:`layer_groups`). Layer j of the
    top-down order is redrawn with seed ``seed · 1_000_003 + j``. A randomised map that became
    constant keeps no ordering of the original: its similarity counts as 0.
    """
    explain_fn = explain_fn or explainer(method)
    device = torch.device(device) if device is not None else model_device(model)
    targets = check_targets(target, images.shape[0])
    bottom_up = list(layers) if layers is not None else parameter_layers(model)
    if not bottom_up:
        raise ProbeValueError("cascading_randomization: the model has no layer with parameters")
    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    unknown = [name for name in bottom_up if name not in modules]
    if unknown:
        raise ProbeValueError(f"unknown layer name(s) {unknown}; valid: {', '.join(parameter_layers(model))}")
    top_down = bottom_up[::-1]
    groups = layer_groups(top_down, max_steps)

    original = explain_in_batches(explain_fn, model, images, targets, batch_size=batch_size, device=device).flatten(1)
    original_varies = original.max(dim=1).values > original.min(dim=1).values
    columns = [torch.ones(original.shape[0], dtype=torch.float64)]
    position = 0
    for group in progress(groups, desc="sanity", total=len(groups), unit="step"):
        for name in group[1]:
            randomize_layer(modules[name], seed * 1_000_003 + position)
            position += 1
        maps = explain_in_batches(explain_fn, randomized, images, targets, batch_size=batch_size, device=device)
        similarity = spearman_rows(original, maps.flatten(1))
        columns.append(torch.where(torch.isnan(similarity) & original_varies, torch.zeros_like(similarity), similarity))
    columns[0] = torch.where(original_varies, columns[0], torch.full_like(columns[0], float("nan")))
    steps = ("original",) + tuple(label for label, _ in groups)
    return SanityResult(steps=steps, similarity=torch.stack(columns, dim=1))
