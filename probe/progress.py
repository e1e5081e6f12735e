"""The one reader of ``PROBE_NO_PROGRESS``, so that every stage turns its progress output off alike.

Unset or empty, ``0``, ``false``, ``no``, ``off``: progress bars and stage times on stderr.
``1``, ``true``, ``yes``, ``on``: none. Case and surrounding spaces do not matter; any other
value is an error naming the variable, never a guess.
"""

from __future__ import annotations

import os

from .errors import ProbeValueError

VARIABLE = "PROBE_NO_PROGRESS"
_OFF = frozenset({"1", "true", "yes", "on"})
_ON = frozenset({"", "0", "false", "no", "off"})


def progress_enabled() -> bool:
    """False when ``PROBE_NO_PROGRESS`` asks for no progress output, True when it is unset or says no."""
    value = os.environ.get(VARIABLE, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ProbeValueError(f"environment variable {VARIABLE}={os.environ[VARIABLE]!r}: expected 1, true, yes "
                          "or on (no progress output), or 0, false, no, off or unset (progress output)")
