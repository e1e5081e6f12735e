"""Third-party architectures and formats, found through the ``probe.backbones`` entry-point group.

Entry points are imported once, at the first lookup of an architecture or format, by
:func:`probe.entry_points.load_entry_points`; whatever they register meanwhile is labelled
``plugin:<distribution>`` (:func:`current_origin`). This module imports neither registry: the
registries ask it for that label and for the entry points.
"""

from __future__ import annotations

from probe.entry_points import Plugin, load_entry_points
from probe.entry_points import current_origin as current_origin  # the registries' one import

ENTRY_POINT_GROUP = "probe.backbones"

_loaded: list[Plugin] | None = None


def load_plugins() -> list[Plugin]:
    """Import every ``probe.backbones`` entry point once (later calls return the same list).

    A plugin that fails to import is skipped with a warning: it must not break the toolkit.
    """
    global _loaded
    if _loaded is not None:
        return list(_loaded)
    _loaded = []  # set first: a plugin that looks up an architecture while importing does not recurse
    _loaded.extend(load_entry_points(ENTRY_POINT_GROUP, "backbone"))
    return list(_loaded)
