"""Which registered architecture a state dict belongs to, found by comparing key names and shapes.

Each candidate is built once on the ``meta`` device (no memory, no initialisation cost) to get
its exact ``{key: shape}`` signature; a checkpoint matches an architecture only if every key and
shape agrees. The same comparison, against a chosen architecture, lists the leftover keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from .errors import ArchitectureError
from .registry import ArchSpec, get_arch, list_archs

# A checkpoint can only belong to a built-in family whose marker key it has (plugins are always tried).
_FAMILY_MARKERS: dict[str, Callable[[Mapping[str, tuple]], bool]] = {
    "resnet": lambda shapes: "conv1.weight" in shapes,
    "simclr_v2": lambda shapes: "net.0.0.weight" in shapes,
    "vit": lambda shapes: "cls_token" in shapes,
    "clip_resnet": lambda shapes: "attnpool.c_proj.weight" in shapes,
}
_LIST_LIMIT = 6


def shapes_of(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


@dataclass(frozen=True)
class Profile:
    """What an architecture looks like without weights: key shapes, parameter count, feature size."""

    shapes: dict[str, tuple]
    parameter_count: int
    feature_dim: int | None


def _meta_model(spec: ArchSpec, kwargs: Mapping) -> torch.nn.Module:
    with torch.device("meta"):
        return spec.create(**kwargs).eval()


@lru_cache(maxsize=256)
def _signature(name: str, constructor_id: int, kwargs_items: tuple) -> dict[str, tuple]:
    return shapes_of(_meta_model(get_arch(name), dict(kwargs_items)).state_dict())


def signature(spec: ArchSpec, kwargs: Mapping) -> dict[str, tuple]:
    """``{key: shape}`` of the architecture's state dict (cached per name and constructor arguments)."""
    return _signature(spec.name, id(spec.constructor), tuple(sorted(kwargs.items())))


def profile(spec: ArchSpec, kwargs: Mapping) -> Profile:
    """Shapes, parameter count and feature size, measured without weights on the meta device."""
    model = _meta_model(spec, kwargs)
    size = kwargs.get("img_size", spec.input_size)
    try:
        with torch.no_grad():
            feature_dim = int(model(torch.empty(1, 3, size, size, device="meta")).shape[-1])
    except Exception:  # a plugin whose forward cannot run on meta tensors: the dimension stays unknown
        feature_dim = None
    return Profile(signature(spec, kwargs), sum(p.numel() for p in model.parameters()), feature_dim)


@dataclass(frozen=True)
class KeyDiff:
    """How a checkpoint's keys differ from an architecture's (BatchNorm counters may be absent)."""

    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[tuple[str, tuple, tuple], ...] = ()  # (key, checkpoint shape, model shape)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def size(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)

    def describe(self, limit: int = _LIST_LIMIT) -> str:
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                parts.append(f"{len(items)} {label} key{'s' * (len(items) != 1)}: {_listing(items, limit)}")
        if self.mismatched:
            shown = [f"{k} (checkpoint {list(a)}, model {list(b)})" for k, a, b in self.mismatched]
            parts.append(f"{len(shown)} shape mismatch{'es' * (len(shown) != 1)}: {_listing(shown, limit)}")
        hint = self.leftover_prefix()
        if hint:
            parts.append(f"the unexpected keys carry a leftover prefix {hint!r}")
        return "; ".join(parts)

    def leftover_prefix(self) -> str | None:
        """A prefix whose removal turns the unexpected keys carrying it (at least half of them) into missing ones.

        Every key carrying it must map onto a missing key: a prefix that only some keys would lose
        (a numeric ``4.0.`` in front of ``conv1.weight`` but also ``conv2.weight``) is not a leftover.
        """
        if not self.unexpected or not self.missing:
            return None
        missing = set(self.missing)
        candidates = []
        for key in self.unexpected:
            parts = key.split(".")
            candidates += [
                ".".join(parts[:cut]) + "." for cut in range(1, len(parts)) if ".".join(parts[cut:]) in missing
            ]
        for prefix in sorted(set(candidates), key=len):
            carrying = [k for k in self.unexpected if k.startswith(prefix)]
            # BatchNorm counters may be absent from the architecture's missing list (they are optional)
            fits = all(k.removeprefix(prefix) in missing or k.endswith("num_batches_tracked") for k in carrying)
            if fits and 2 * len(carrying) >= len(self.unexpected):
                return prefix
        return None


def _listing(items, limit: int) -> str:
    items = list(items)
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def compare(expected: Mapping[str, tuple], found: Mapping[str, tuple]) -> KeyDiff:
    """Keys/shapes of an architecture vs a checkpoint; missing ``num_batches_tracked`` is fine."""
    missing = tuple(k for k in expected if k not in found and not k.endswith("num_batches_tracked"))
    unexpected = tuple(k for k in found if k not in expected)
    mismatched = tuple(
        (k, found[k], expected[k]) for k in expected if k in found and tuple(found[k]) != tuple(expected[k])
    )
    return KeyDiff(missing, unexpected, mismatched)


@dataclass(frozen=True)
class ArchChoice:
    """The architecture chosen for a checkpoint, its constructor arguments, and why."""

    spec: ArchSpec
    kwargs: dict = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()  # what the shapes could not tell (e.g. a ViT-S head count)

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.spec.name}({args})" if args else self.spec.name


def kwargs_for(spec: ArchSpec, shapes: Mapping[str, tuple]) -> dict | None:
    """Constructor arguments read from the shapes; {} for fixed architectures, None if they cannot fit."""
    if spec.detection.infer_kwargs is None:
        return {}
    try:
        return spec.detection.infer_kwargs(shapes)
    except Exception:  # a plugin hook that chokes on foreign shapes simply does not fit
        return None


def _candidates(shapes: Mapping[str, tuple]) -> list[ArchSpec]:
    out = []
    for spec in list_archs():
        marker = _FAMILY_MARKERS.get(spec.family)
        if spec.origin != "builtin" or marker is None or marker(shapes):
            out.append(spec)
    return out


def _diff(spec: ArchSpec, shapes: Mapping[str, tuple]) -> tuple[dict, KeyDiff] | None:
    kwargs = kwargs_for(spec, shapes)
    if kwargs is None:
        return None
    try:
        return kwargs, compare(signature(spec, kwargs), shapes)
    except Exception:  # a constructor that fails for these arguments (or on meta) is not a candidate
        return None


def choose_arch(
    shapes: Mapping[str, tuple], path: str, *, forced: str | None = None, hint: str | None = None
) -> ArchChoice:
    """Pick the architecture: ``forced`` (arch=), else the format's ``hint`` if it fits, else a unique fit."""
    if forced is not None:
        spec = get_arch(forced)
        return ArchChoice(spec, kwargs_for(spec, shapes) or {}, ("given with arch=",))
    fits: list[tuple[ArchSpec, dict, KeyDiff]] = []
    near: list[tuple[ArchSpec, dict, KeyDiff]] = []
    for spec in _candidates(shapes):
        result = _diff(spec, shapes)
        if result is None:
            continue
        kwargs, diff = result
        (fits if diff.ok else near).append((spec, kwargs, diff))
    hinted = [f for f in fits if f[0].name == hint]
    if hinted:
        spec, kwargs, _ = hinted[0]
        return ArchChoice(spec, kwargs, ("every key and shape matches", "preferred by the checkpoint format"))
    candidates = [f for f in fits if f[0].detection.mode != "hint"]
    # A fallback family counts as specific when it fits with its defaults;
    # with inferred arguments, only if nothing else fits.
    specific = [f for f in candidates if f[0].detection.mode == "auto" or not f[1]]
    pool = specific or candidates
    if len(pool) > 1:
        builtin = [f for f in pool if f[0].origin == "builtin"]
        pool = builtin if len(builtin) == 1 else pool
    if len(pool) == 1:
        spec, kwargs, _ = pool[0]
        others = [f[0].name for f in specific if f[0] is not spec]
        notes = (f"the shapes also fit {', '.join(others)} (pass arch= to use one)",) if others else ()
        caveats = (spec.detection.note,) if spec.detection.note else ()
        return ArchChoice(spec, kwargs, ("every key and shape matches",), notes, caveats)
    if pool:
        listed = "; ".join(f"{f[0].name} ({f[0].description.split(';')[0]})" for f in pool)
        raise ArchitectureError(
            f"{path}: the weights fit several architectures ({listed}), which differ in what tensors do not show "
            f"(such as the number of attention heads or the activation); pass arch= (--arch) with one of "
            f"{', '.join(f[0].name for f in pool)}"
        )
    near.sort(key=lambda f: f[2].size)
    closest = "; ".join(f"{spec.name}: {diff.describe(3)}" for spec, _, diff in near[:3])
    raise ArchitectureError(
        f"{path}: no registered architecture matches the weights ({len(shapes)} tensors, first keys "
        f"{_listing(list(shapes), 3)})"
        + (f". Closest: {closest}" if closest else "")
        + ". If it is a network of your own, register it (backbones.register) and pass arch="
    )
