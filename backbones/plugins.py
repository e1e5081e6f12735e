"""Third-party architectures and formats, found through the ``probe.backbones`` entry-point group.

Entry points are imported once, at the first lookup of an architecture or format. While one is
imported, whatever it registers is labelled ``plugin:<distribution>`` (:func:`current_origin`). This
module imports neither registry: the registries ask it for that label and for the entry points.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

ENTRY_POINT_GROUP = "probe.backbones"

_origin: ContextVar[str | None] = ContextVar("backbones_plugin_origin", default=None)
_loaded: list[Plugin] | None = None


@dataclass(frozen=True)
class Plugin:
    """One imported entry point: a module (its import registered things) or a constructor to register."""

    name: str
    value: str  # "package.module" or "package.module:attribute"
    origin: str  # "plugin:<distribution>"
    obj: Any


def current_origin() -> str | None:
    """``plugin:<distribution>`` while that plugin's entry point is being imported, else None."""
    return _origin.get()


def load_plugins() -> list[Plugin]:
    """Import every ``probe.backbones`` entry point once (later calls return the same list).

    A plugin that fails to import is skipped with a warning: it must not break the toolkit.
    """
    global _loaded
    if _loaded is not None:
        return list(_loaded)
    _loaded = []  # set first: a plugin that looks up an architecture while importing does not recurse
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        origin = f"plugin:{dist.name}" if dist is not None else f"plugin:{ep.value}"
        token = _origin.set(origin)
        try:
            obj = ep.load()
        except Exception as exc:
            warnings.warn(f"backbone plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)
            continue
        finally:
            _origin.reset(token)
        _loaded.append(Plugin(ep.name, ep.value, origin, obj))
    return list(_loaded)
