"""Registry of backbone architectures, in the manner of timm's model registry.

An architecture is a named constructor that returns a *feature extractor*: an
``nn.Module`` whose forward maps a preprocessed image batch ``[N, 3, H, W]`` to
pooled features ``[N, D]`` and whose state-dict keys are the ones checkpoint
loaders produce after stripping prefixes and dropping heads (torchvision names
for ResNets, timm names for ViTs).

Third parties add architectures with ``@backbones.register("name")`` or through
the ``probe.backbones`` entry-point group of their own distribution (see
:func:`load_plugins`).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn

from probe.errors import ProbeValueError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENTRY_POINT_GROUP = "probe.backbones"


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about one architecture."""

    name: str
    constructor: Callable[..., nn.Module]
    family: str = "resnet"
    input_size: int = 224
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD
    agf_supported: bool = True
    description: str = ""
    origin: str = "builtin"
    defaults: dict = field(default_factory=dict)

    def create(self, **kwargs) -> nn.Module:
        """Build a fresh, randomly initialised feature extractor."""
        return self.constructor(**{**self.defaults, **kwargs})


_ARCHS: dict[str, ArchSpec] = {}
_plugins_loaded = False


def register(
    name: str,
    *,
    family: str = "resnet",
    input_size: int = 224,
    mean: tuple[float, float, float] | None = IMAGENET_MEAN,
    std: tuple[float, float, float] | None = IMAGENET_STD,
    agf_supported: bool = True,
    description: str = "",
    origin: str = "builtin",
    **defaults,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a feature-extractor constructor under ``name``.

    ``mean``/``std`` are the input normalisation the architecture is usually
    trained with (``None`` for raw [0, 1] input); checkpoint formats may override them.
    """

    def decorator(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHS and _ARCHS[name].constructor is not constructor:
            raise ProbeValueError(f"backbone architecture {name!r} is already registered ({_ARCHS[name].origin})")
        _ARCHS[name] = ArchSpec(
            name=name,
            constructor=constructor,
            family=family,
            input_size=input_size,
            mean=mean,
            std=std,
            agf_supported=agf_supported,
            description=description or (constructor.__doc__ or "").strip().split("\n")[0],
            origin=origin,
            defaults=dict(defaults),
        )
        return constructor

    return decorator


def load_plugins() -> list[str]:
    """Import every ``probe.backbones`` entry point once; return the names found.

    An entry point may name a module (importing it runs its ``@register`` calls) or
    a constructor, which is then registered under the entry point's name.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break the toolkit
            import warnings

            warnings.warn(f"backbone plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        dist = getattr(ep, "dist", None)
        origin = f"plugin:{dist.name}" if dist is not None else f"plugin:{ep.value}"
        if callable(obj) and ep.name not in _ARCHS:
            register(ep.name, origin=origin)(obj)
        found.append(ep.name)
    return found


def get_arch(name: str) -> ArchSpec:
    """Look up an architecture; the error lists the known names."""
    load_plugins()
    try:
        return _ARCHS[name]
    except KeyError:
        known = ", ".join(sorted(_ARCHS))
        raise ProbeValueError(f"unknown backbone architecture {name!r}; known: {known}") from None


def create(name: str, **kwargs) -> nn.Module:
    """Build a randomly initialised feature extractor of architecture ``name``."""
    return get_arch(name).create(**kwargs)


def list_archs() -> list[ArchSpec]:
    """All registered architectures (built-in and plugins), sorted by name."""
    load_plugins()
    return [_ARCHS[k] for k in sorted(_ARCHS)]
