"""Registry of backbone architectures, in the manner of timm's model registry.

An architecture is a named constructor that returns a *feature extractor*: an
``nn.Module`` whose forward maps a preprocessed image batch ``[N, 3, H, W]`` to
pooled features ``[N, D]`` and whose state-dict keys are the ones checkpoint
loaders produce after stripping prefixes and dropping heads (torchvision names
for ResNets, timm names for ViTs).

Third parties add architectures with ``@backbones.register("name")`` or through
the ``probe.backbones`` entry-point group of their own distribution (``backbones.plugins``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch.nn as nn

from probe.errors import ProbeValueError

from . import plugins
from .preprocessing import Preprocessing

DETECTION_MODES = ("auto", "hint", "fallback")


@dataclass(frozen=True)
class Detection:
    """How shape-based detection treats an architecture.

    ``mode``: "auto"; "hint" (chosen only when a format asks for it, e.g. a twin with identical
    shapes); "fallback" (a parametric family tried when nothing fixed fits). ``infer_kwargs`` reads
    constructor arguments from checkpoint shapes ``{key: shape}`` (e.g. a ViT's ``img_size``) and
    returns None when the shapes cannot belong to the architecture. ``note`` is shown when detection
    picks it (what the shapes cannot tell).
    """

    mode: str = "auto"
    infer_kwargs: Callable[[Mapping[str, tuple]], dict | None] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.mode not in DETECTION_MODES:
            raise ProbeValueError(f"detection mode must be one of {', '.join(DETECTION_MODES)}, got {self.mode!r}")


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about one architecture."""

    name: str
    constructor: Callable[..., nn.Module]
    family: str = "resnet"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    detection: Detection = field(default_factory=Detection)
    description: str = ""
    origin: str = "builtin"

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    @property
    def mean(self) -> tuple[float, float, float] | None:
        return self.preprocessing.mean

    def create(self, **kwargs) -> nn.Module:
        """Build a fresh, randomly initialised feature extractor."""
        return self.constructor(**kwargs)


_ARCHS: dict[str, ArchSpec] = {}


def register(
    name: str,
    *,
    preprocessing: Preprocessing | None = None,
    family: str = "resnet",
    detection: Detection | None = None,
    description: str = "",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a feature-extractor constructor under ``name``.

    ``preprocessing`` is what the architecture is usually trained with (default: 224 px, ImageNet
    statistics); checkpoint formats may change its normalisation. ``description`` defaults to the
    constructor's first docstring line.
    """

    def decorator(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHS and _ARCHS[name].constructor is not constructor:
            raise ProbeValueError(f"backbone architecture {name!r} is already registered ({_ARCHS[name].origin})")
        _ARCHS[name] = ArchSpec(
            name=name,
            constructor=constructor,
            family=family,
            preprocessing=preprocessing or Preprocessing(),
            detection=detection or Detection(),
            description=description or (constructor.__doc__ or "").strip().split("\n")[0],
            origin=_origin(constructor),
        )
        return constructor

    return decorator


def _origin(constructor: Callable) -> str:
    """``plugin:<distribution>`` while a plugin loads, "builtin" for this package, else ``user:<module>``."""
    module = getattr(constructor, "__module__", "") or ""
    return plugins.current_origin() or ("builtin" if module.split(".")[0] == "backbones" else f"user:{module}")


def load_plugins() -> list[str]:
    """Import the ``probe.backbones`` entry points (once) and register the constructors among them; their names.

    An entry point may name a module (importing it runs its ``@register`` and ``register_format``
    calls) or a constructor, registered under the entry point's name.
    """
    found = plugins.load_plugins()
    for plugin in found:
        if callable(plugin.obj) and plugin.name not in _ARCHS:
            _ARCHS[plugin.name] = ArchSpec(
                name=plugin.name,
                constructor=plugin.obj,
                description=(plugin.obj.__doc__ or "").strip().split("\n")[0],
                origin=plugin.origin,
            )
    return [plugin.name for plugin in found]


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
