"""The one reader of ``PROBE_NO_PROGRESS``, so that every stage turns its progress output off alike.

Unset or empty, ``0``, ``false``, ``no``, ``off``: progress bars and stage times on stderr.
``1``, ``true``, ``yes``, ``on``: none. Case and surrounding spaces do not matter; any other
value is an error naming the variable, never a guess. Inside :func:`inner_bars_off` (a stage
that shows one bar of its own) the bars of the functions it calls stay off too.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

from .errors import ProbeValueError

VARIABLE = "PROBE_NO_PROGRESS"
_OFF = frozenset({"1", "true", "yes", "on"})
_ON = frozenset({"", "0", "false", "no", "off"})


_INNER_OFF = contextvars.ContextVar("probe_inner_bars_off", default=False)


@contextlib.contextmanager
def inner_bars_off() -> Iterator[None]:
    """Within the block, :func:`progress_enabled` is False: the caller shows one bar for the whole stage."""
    token = _INNER_OFF.set(True)
    try:
        yield
    finally:
        _INNER_OFF.reset(token)


def progress_enabled() -> bool:
    """False when ``PROBE_NO_PROGRESS`` asks for no progress output (or inside :func:`inner_bars_off`), True
    when it is unset or says no."""
    if _INNER_OFF.get():
        return False
    value = os.environ.get(VARIABLE, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ProbeValueError(
        f"environment variable {VARIABLE}={os.environ[VARIABLE]!r}: expected 1, true, yes "
        "or on (no progress output), or 0, false, no, off or unset (progress output)"
    )
