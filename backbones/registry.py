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
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import torch.nn as nn

from probe.errors import ProbeValueError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.247, 0.243, 0.261)
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
    # Fraction of the resized image kept by the centre crop; None: 0.875 at ImageNet scale, 1.0 for small inputs.
    crop_pct: float | None = None
    # How shape-based detection may pick it: "auto"; "hint" (only when a format asks for it, e.g.
    # a twin with identical shapes); "fallback" (a parametric family tried when nothing else fits).
    detection: str = "auto"
    # Constructor keyword arguments read from checkpoint shapes ({key: shape}), e.g. a ViT's img_size;
    # None when the shapes cannot belong to this architecture.
    infer_kwargs: Callable[[Mapping[str, tuple]], dict | None] | None = None
    # Shown when shape-based detection picks this architecture (what the shapes cannot tell).
    detect_note: str = ""

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
    origin: str | None = None,
    crop_pct: float | None = None,
    detection: str = "auto",
    infer_kwargs: Callable[[Mapping[str, tuple]], dict | None] | None = None,
    detect_note: str = "",
    **defaults,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a feature-extractor constructor under ``name``.

    ``mean``/``std`` are the input normalisation the architecture is usually
    trained with (``None`` for raw [0, 1] input); checkpoint formats may override them.
    ``origin`` defaults to "builtin" for this package and to the defining module otherwise.
    """
    if detection not in ("auto", "hint", "fallback"):
        raise ProbeValueError(f"detection must be 'auto', 'hint' or 'fallback', got {detection!r}")

    def decorator(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHS and _ARCHS[name].constructor is not constructor:
            raise ProbeValueError(f"backbone architecture {name!r} is already registered ({_ARCHS[name].origin})")
        module = getattr(constructor, "__module__", "") or ""
        _ARCHS[name] = ArchSpec(
            name=name,
            constructor=constructor,
            family=family,
            input_size=input_size,
            mean=mean,
            std=std,
            agf_supported=agf_supported,
            description=description or (constructor.__doc__ or "").strip().split("\n")[0],
            origin=origin or ("builtin" if module.split(".")[0] == "backbones" else f"user:{module}"),
            defaults=dict(defaults),
            crop_pct=crop_pct,
            detection=detection,
            infer_kwargs=infer_kwargs,
            detect_note=detect_note,
        )
        return constructor

    return decorator


def load_plugins() -> list[str]:
    """Import every ``probe.backbones`` entry point once; return the names found.

    An entry point may name a module (importing it runs its ``@register`` and
    ``register_format`` calls) or a constructor, which is then registered under the
    entry point's name. Whatever a plugin registers is labelled ``plugin:<distribution>``.
    """
    from .formats import base as formats  # late: the format registry imports this module

    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        before, formats_before = set(_ARCHS), set(formats._FORMATS)
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break the toolkit
            warnings.warn(f"backbone plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        dist = getattr(ep, "dist", None)
        origin = f"plugin:{dist.name}" if dist is not None else f"plugin:{ep.value}"
        for name in set(_ARCHS) - before:  # registered by the plugin module's decorators
            _ARCHS[name] = replace(_ARCHS[name], origin=origin)
        for name in set(formats._FORMATS) - formats_before:
            formats._FORMATS[name] = replace(formats._FORMATS[name], origin=origin)
        if callable(obj) and ep.name not in _ARCHS:  # modules are not callable
            register(ep.name, origin=origin)(obj)
        found.append(ep.name)
    return found


def update_arch(name: str, **changes) -> ArchSpec:
    """Change metadata of a registered architecture (e.g. attach ``infer_kwargs`` to a family defined elsewhere).

    Does not load plugins: it runs while ``backbones`` itself is being imported.
    """
    if name not in _ARCHS:
        raise ProbeValueError(f"cannot update unknown backbone architecture {name!r}")
    spec = replace(_ARCHS[name], **changes)
    _ARCHS[name] = spec
    return spec


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
