"""Checkpoint formats: one module per family, each with a ``SPEC`` (``detect(obj)`` and ``extract(obj)``).

Detection asks every registered format for a :class:`Match`; the strongest claim wins, and a
tie at the top (or no claim) is a :class:`FormatDetectionError` listing candidates and evidence.
Plugins add formats with :func:`register_format` (e.g. from a ``probe.backbones`` entry point).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from typing import Any

from .. import plugins
from ..errors import FormatDetectionError, UnknownFormatError
from . import plain
from .base import ANY, Extraction, FormatMeta, FormatSpec, Match, register_format, registered_formats
from .keys import describe_top, find_state_dict

# The built-in formats: a module of this package each, registered in this order (the listing order).
# A new format is one module with a `SPEC` and one entry here.
BUILTIN = (
    "moco",
    "moco_v3",
    "simclr_v1",
    "simclr_v2",
    "byol",
    "dino",
    "dinov2",
    "ibot",
    "mae",
    "clip",
    "swav",
    "barlow_twins",
    "vicreg",
    "solo_learn",
    "lightly",
    "vissl",
    "plain",
)
for _name in BUILTIN:
    register_format(importlib.import_module(f"{__name__}.{_name}").SPEC)

__all__ = [
    "BUILTIN",
    "Extraction",
    "FormatChoice",
    "FormatMeta",
    "FormatSpec",
    "Match",
    "choose_format",
    "get_format",
    "list_formats",
    "register_format",
]


@dataclass(frozen=True)
class FormatChoice:
    """The format used for a checkpoint, why, and which other formats also claimed it."""

    spec: FormatSpec
    match: Match | None  # None when forced with format=
    alternatives: tuple[tuple[str, Match], ...] = ()


def list_formats() -> list[FormatSpec]:
    """Every known format, built-ins first, then plugins."""
    plugins.load_plugins()
    return registered_formats()


def get_format(name: str) -> FormatSpec:
    """Look up a format by name; the error lists the known ones."""
    for spec in list_formats():
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in list_formats())
    raise FormatDetectionError(f"unknown checkpoint format {name!r}; known formats: {known}")


def _claims(obj: Any) -> list[tuple[FormatSpec, Match]]:
    claims = []
    for spec in list_formats():
        try:
            match = spec.detect(obj)
        except Exception as exc:  # a plugin's broken detector must not hide the built-in answer
            match = None
            if spec.origin == "builtin":
                raise
            warnings.warn(f"format plugin {spec.name!r} failed to inspect the checkpoint: {exc}", stacklevel=2)
        if match is not None:
            claims.append((spec, match))
    return claims


def _explain(spec: FormatSpec, match: Match) -> str:
    return f"{spec.name} ({'; '.join(match.reasons)})"


def choose_format(obj: Any, path: str, *, forced: str | None = None, arch_given: bool = False) -> FormatChoice:
    """Pick the format of a loaded checkpoint object (``path`` is for messages)."""
    if forced is not None:
        return FormatChoice(get_format(forced), None)
    claims = sorted(_claims(obj), key=lambda c: -c[1].strength)
    if not claims or (claims[0][1].strength == ANY and not arch_given):
        raise UnknownFormatError(_unknown_message(obj, path))
    best = [c for c in claims if c[1].strength == claims[0][1].strength]
    if len(best) > 1:
        listed = "; ".join(_explain(s, m) for s, m in best)
        raise FormatDetectionError(
            f"{path}: the checkpoint format is ambiguous, candidates: {listed}. Pass format= (--format) to choose"
        )
    spec, match = best[0]
    return FormatChoice(spec, match, tuple((s.name, m) for s, m in claims[1:] if m.strength > ANY))


def _unknown_message(obj: Any, path: str) -> str:
    found = find_state_dict(obj, "state_dict", "model")
    evidence = f"top level: {describe_top(obj)}"
    if found is not None:
        keys = list(found[1])
        where = f"; {len(keys)} tensors under {found[0]!r}" if found[0] else ""
        evidence += f"{where}; first keys: {', '.join(keys[:4])}"
        hidden = plain.wrapper_prefix(found[1])
        if hidden:
            evidence += f"; every key starts with {hidden!r}, behind which are known key names"
    names = ", ".join(s.name for s in list_formats())
    return (
        f"{path}: could not detect the checkpoint format ({evidence}). Known formats: {names} "
        "(their detection signals: `probe backbones list`)."
    )
