"""Plugins found through entry-point groups: the one loop that imports them, for every registry.

A low-level module like :mod:`probe.errors`: ``backbones`` imports it too. While an entry point is
imported, :func:`current_origin` names its distribution, so whatever its import registers is
labelled ``plugin:<distribution>``.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

_origin: ContextVar[str | None] = ContextVar("plugin_origin", default=None)


@dataclass(frozen=True)
class Plugin:
    """One imported entry point: a module (its import registered things) or an object to register."""

    name: str
    value: str  # "package.module" or "package.module:attribute"
    origin: str  # "plugin:<distribution>"
    obj: Any


def current_origin() -> str | None:
    """``plugin:<distribution>`` while that distribution's entry point is being imported, else None."""
    return _origin.get()


def load_entry_points(group: str, kind: str, accept: Callable[[Plugin], object] | None = None) -> list[Plugin]:
    """Import every entry point of ``group``; ``accept`` runs on each right after its import.

    Both run while :func:`current_origin` names the plugin. One whose import or ``accept`` raises is
    skipped with a warning (``<kind> plugin 'name' (value) failed to load: ...``): a broken plugin
    must not break the toolkit.
    """
    loaded = []
    for ep in importlib.metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        origin = f"plugin:{dist.name}" if dist is not None else f"plugin:{ep.value}"
        token = _origin.set(origin)
        try:
            plugin = Plugin(ep.name, ep.value, origin, ep.load())
            if accept is not None:
                accept(plugin)
        except Exception as exc:
            warnings.warn(f"{kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=3)
            continue
        finally:
            _origin.reset(token)
        loaded.append(plugin)
    return loaded
