"""``python counting_run.py ARGS``: ``probe ARGS`` that reports the feature rows it computes.

After each extracted batch it prints ``rows N`` (feature rows computed so far by this process). Once N
reaches ``$FAULTS_PAUSE_AT_ROWS`` it waits, mid-extraction, for a line on stdin (or its end), so that a
test can signal it there however slowly the test itself runs. At exit it prints ``total rows N``.
Everything else is the real command. SIGINT gets Python's usual handler even when the test runs in a
background shell, which starts children with SIGINT ignored: the child stands for a run in a terminal.
"""

from __future__ import annotations

import os
import signal
import sys

from unsupervised import cache

_write = cache.Partial.write
_computed = 0


def _counting_write(self, rows, values) -> None:
    global _computed
    _write(self, rows, values)
    _computed += len(rows)
    print(f"rows {_computed}", flush=True)
    if 0 < int(os.environ.get("FAULTS_PAUSE_AT_ROWS", "0")) <= _computed:
        sys.stdin.readline()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cache.Partial.write = _counting_write
    from probe.cli import main

    try:
        code = main(sys.argv[1:])
    finally:
        print(f"total rows {_computed}", flush=True)
    sys.exit(code)
