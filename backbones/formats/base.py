"""Types shared by the checkpoint-format modules, and the format registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import torch

from probe.errors import ProbeValueError

from .. import plugins
from ..preprocessing import Normalization, Preprocessing

# Detection strength: the highest wins; a tie at the top is an ambiguity error.
UNIQUE = 3  # a layout no other known family writes (method-specific prefixes or top-level keys)
STRONG = 2  # a distinctive but not exclusive signal (single `state_dict` wrapper with fc, no BN counters)
GENERIC = 1  # a plain ResNet/ViT state dict: many families share it and load identically
ANY = 0  # any flat dict of tensors; accepted only when the architecture is given


@dataclass(frozen=True)
class Match:
    """A format's claim on a checkpoint: how strong, and why."""

    strength: int
    reasons: tuple[str, ...]


@dataclass
class FormatMeta:
    """What an extraction learned besides the weights."""

    container: str = ""  # where the backbone weights sit in the file ("" = the top level)
    container_keys: tuple[str, ...] = ()  # every key of that state dict, before stripping
    variant: str | None = None
    normalization: Normalization | None = None  # None: the architecture's default
    interpolation: str | None = None  # resize mode the family evaluates with; None: the architecture's default
    arch_hint: str | None = None  # preferred when its shapes match (e.g. MoCo v3 ViT-S has 12 heads)
    ignored: list[str] = field(default_factory=list)  # top-level entries not used (optimizer, epoch...)
    notes: list[str] = field(default_factory=list)  # facts worth knowing (normalisation, variant details)
    caveats: list[str] = field(default_factory=list)  # assumptions that may be wrong; `load` warns about them

    def preprocessing(self, default: Preprocessing) -> Preprocessing:
        """The architecture's preprocessing with what this checkpoint's family changes."""
        changes: dict[str, Any] = {}
        if self.normalization is not None:
            changes["normalization"] = self.normalization
        if self.interpolation is not None:
            changes["interpolation"] = self.interpolation
        return default.replace(**changes)


class Extraction(NamedTuple):
    """Backbone state dict (prefix stripped, heads dropped), the dropped keys, and what was learned."""

    state_dict: dict[str, torch.Tensor]
    dropped: list[str]
    meta: FormatMeta


@dataclass(frozen=True)
class FormatSpec:
    """A checkpoint family: how to recognise it, how to take the backbone out, and its documentation."""

    name: str
    title: str
    detect: Callable[[Any], Match | None]
    extract: Callable[[Any], Extraction]
    signal: str  # detection signal, for `probe backbones list` and the docs
    prefix: str = "none"
    drops: str = ""
    archs: str = ""
    normalization: str = "ImageNet mean/std"
    origin: str = "builtin"


_FORMATS: dict[str, FormatSpec] = {}


def register_format(spec: FormatSpec) -> FormatSpec:
    """Add a checkpoint format (built-in or plugin); names must be unique.

    The origin is set here: ``plugin:<distribution>`` while a plugin loads, ``user:<module>`` for a
    format defined outside this package.
    """
    module = getattr(spec.detect, "__module__", "") or ""
    origin = plugins.current_origin()
    if origin is None and spec.origin == "builtin" and module.split(".")[0] != "backbones":
        origin = f"user:{module}"
    if origin is not None:
        spec = replace(spec, origin=origin)
    if spec.name in _FORMATS and _FORMATS[spec.name] != spec:
        raise ProbeValueError(f"checkpoint format {spec.name!r} is already registered ({_FORMATS[spec.name].origin})")
    _FORMATS[spec.name] = spec
    return spec


def registered_formats() -> list[FormatSpec]:
    """Formats in registration order (built-ins first); plugins are not loaded here."""
    return list(_FORMATS.values())
