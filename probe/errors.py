"""Error types for expected failures.

Anything derived from :class:`ProbeError` is a problem with the user's input or
environment (a bad argument, an unreadable checkpoint, an empty folder). The CLI
prints such errors as one line and exits with status 2; every other exception is a
bug and keeps its traceback.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base class of every expected, user-facing failure in ssl-probe."""


class ProbeValueError(ProbeError, ValueError):
    """An argument or input has the right type but a wrong value."""


class ProbeTypeError(ProbeError, TypeError):
    """An argument or input has the wrong type (e.g. dtype, rank, module type)."""


class OutputError(ProbeError, OSError):
    """An output location cannot be used (not writable, locked by another run, disk full)."""
