"""Stage timing and the run log: every stage is timed into ``RunResults.timings`` and logged to ``OUT/run.log``."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from probe.errors import ProbeError, environment_error
from probe.progress import progress_enabled

log = logging.getLogger("probe.pipeline")

#: The stages of a run, in order; timings are summed over backbones.
STAGES = ("extract", "cluster", "head", "explain", "evaluate", "report")
#: Loggers whose records go to run.log (the pipeline and the packages it drives).
LOGGERS = ("probe", "unsupervised", "backbones")


class StageClock:
    """Accumulates wall-clock seconds per stage; ``with clock("explain", "moco"):`` times and logs one step."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str, what: str = "") -> Iterator[None]:
        label = f"{stage} {what}".strip()
        log.info("%s: started", label)
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            log.error("%s: failed after %.1f s", label, time.perf_counter() - start)
            raise
        seconds = time.perf_counter() - start
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        log.info("%s: done in %.1f s", label, seconds)
        if progress_enabled() and seconds >= 1.0:
            print(f"[{stage}] {what + ': ' if what else ''}{seconds:.1f} s", file=sys.stderr)

    def add(self, stage: str, seconds: float) -> None:
        """Book ``seconds`` to ``stage`` without a log line (stages whose work is interleaved)."""
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def ordered(self) -> dict[str, float]:
        """Timings in stage order (stages that did not run are left out)."""
        return {stage: round(self.timings[stage], 3) for stage in STAGES if stage in self.timings}


class WorkBar:
    """One progress bar for a stage's work, counted in estimated forward passes: percentage and time left.

    Shown on stderr by the main process when progress output is on; ``advance`` and ``resize`` do
    nothing otherwise. ``resize`` sets the total once the work turns out smaller than planned.
    """

    def __init__(self, label: str, total: float, *, show: bool) -> None:
        self._bar = None
        if show and progress_enabled():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                desc=label,
                leave=False,
                smoothing=0.05,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
            )

    def advance(self, amount: float) -> None:
        if self._bar is not None:
            self._bar.update(amount)

    def resize(self, total: float) -> None:
        if self._bar is not None:
            self._bar.total = max(total, self._bar.n)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    """Log how long one step inside a stage took (``run.log`` only, not a stage timing)."""
    start = time.perf_counter()
    yield
    log.info("%s in %.1f s", label, time.perf_counter() - start)


class _RunLogHandler(logging.FileHandler):
    """Writes run.log; on a full disk a lost line is dropped quietly (the run's own error says what happened)."""

    def handleError(self, record: logging.LogRecord) -> None:
        problem = sys.exc_info()[1]
        if problem is None or environment_error(problem) is None:
            super().handleError(record)


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Append INFO records of the pipeline and its packages to ``path`` for the duration of the block,
    and why the block ended early if it did (an internal error with its traceback)."""
    handler = _RunLogHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    except Exception as exc:
        expected = exc if isinstance(exc, ProbeError) else environment_error(exc)
        if expected is None:
            log.exception("run failed with an internal error")
        else:
            log.error("run failed: %s", expected)
        raise
    except BaseException as exc:
        log.error("run stopped: %s", "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__)
        raise
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()
