"""Error type of the unsupervised package."""

from __future__ import annotations

from probe.errors import ProbeError


class DataError(ProbeError, ValueError):
    """Unusable input data: an empty folder, a bad ``k``, non-finite features, a foreign cache or state file."""


def name_some(items: list[str], limit: int = 5) -> str:
    """``'a, b, c and 7 more'``: a short list for error messages that must name what failed."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
