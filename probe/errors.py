"""Error types for expected failures.

Anything derived from :class:`ProbeError` is a problem with the user's input or
environment (a bad argument, an unreadable checkpoint, an empty folder). The CLI
prints such errors as one line and exits with status 2; every other exception is a
bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from collections.abc import Iterator

#: OSError codes that mean the environment refused an operation (full disk or quota, read-only
#: filesystem, permissions, file-size limit): expected failures, never bugs.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class ProbeError(Exception):
    """Base class of every expected, user-facing failure in ssl-probe."""


class ProbeValueError(ProbeError, ValueError):
    """An argument or input has the right type but a wrong value."""


class ParameterError(ProbeValueError):
    """A bad value of one named parameter. The message starts with the parameter's name, which the
    CLI replaces by the command-line flag (``max_images must be >= 1`` -> ``--max-images must be >= 1``).

    ``problem`` follows the name after a space, or directly when it starts with a colon.
    """

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(self.naming(parameter))

    def __reduce__(self) -> tuple:  # keeps the fields through pickling (worker processes)
        return type(self), (self.parameter, self.problem)

    def naming(self, name: str) -> str:
        """The message with the parameter called ``name`` (e.g. its flag)."""
        return f"{name}{self.problem}" if self.problem.startswith(":") else f"{name} {self.problem}"


class ProbeTypeError(ProbeError, TypeError):
    """An argument or input has the wrong type (e.g. dtype, rank, module type)."""


class OutputError(ProbeError, OSError):
    """An output location cannot be used (not writable, locked by another run, disk full)."""


def environment_error(exc: BaseException, path: object = None) -> OutputError | None:
    """The :class:`OutputError` for an OSError the environment caused (else None), naming ``path`` or the
    file the error names, e.g. ``cannot write out/report.html: No space left on device (...)``."""
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    if isinstance(exc, OutputError):
        return exc
    where = path if path is not None else exc.filename
    verb = "cannot write" if exc.errno in _FULL or exc.errno == errno.EROFS else "cannot use"
    hint = " (the disk or quota is full: free some space or write elsewhere)" if exc.errno in _FULL else ""
    return OutputError(f"{verb} {where}: {exc.strerror or exc}{hint}" if where else f"{exc.strerror or exc}{hint}")


class Terminated(SystemExit):
    """SIGTERM arrived (see :func:`sigterm_unwinds`); uncaught, it ends the process with status 143."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` for the block, so that ``finally`` clauses run (finished work
    is flushed, temporary files removed) before the process ends. Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
