"""A run's session on its output folder: the lock, ``run.log``, the stage clock, the report header,
and stage report at the end. ``probe run`` and ``probe demo`` differ only in what they load."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import backbones
from probe.fileio import atomic_write_json, locked_output_dir
from probe.report import RunResults, write_report
from unsupervised import ImageFolderData

from .compare import group_backbones, probe_backbones
from .options import ProbeOptions
from .saved import backbone_dir, promote_pending
from .stages import StageClock, run_log

log = logging.getLogger("probe.pipeline")

LOG_FILE = "run.log"
TIMINGS_FILE = "timings.json"


def write_run_report(out: str | os.PathLike, results: RunResults, clock: StageClock) -> Path:
    """Write the report (stage "report") and move the run's pending pseudo-class state into place,
    then ``timings.json`` with every stage's wall-clock seconds.

    The timings stay out of metrics.json, which holds only what the inputs and seed determine;
    the report's own time is logged and added to ``results.timings`` afterwards. An earlier run's
    timings.json is removed first so it never sits beside another run's report (run.log keeps them).
    """
    (Path(out) / TIMINGS_FILE).unlink(missing_ok=True)
    with clock("report"):
        page = write_report(out, results)
        for backbone in results.backbones:  # this run's folders only, never another run's leftovers
            promote_pending(backbone_dir(Path(out), backbone.name))
    results.timings = clock.ordered()
    atomic_write_json(Path(out) / TIMINGS_FILE, {"seconds": results.timings})
    log.info("report written to %s", page)
    return page


@dataclass
class RunSession:
    """An output folder held by one run (locked, logging to run.log) and the clock of its stages."""

    out: Path
    clock: StageClock = field(default_factory=StageClock)

    def probe(self, probes: Sequence[tuple[str, backbones.Backbone]], data: ImageFolderData, options: ProbeOptions,
              *, settings: Mapping[str, str | int | float], cache_dir: str | os.PathLike | None = None,
              positive_controls: Collection[str] = ()) -> RunResults:
        """Probe ``probes`` on ``data``, each architecture against its random-init control, and write the report.

        ``settings`` head the report's settings; k, seed, methods, control and device follow. The methods
        are settled (and a given one that cannot explain a backbone refused) before any heavy work.
        ``positive_controls`` names the probed backbones known to be semantic (role "positive control").
        """
        groups = group_backbones(probes, options)
        several = len(groups) > 1
        header = {**settings, "k": options.k, "seed": options.seed,
                  "methods": "; ".join(g.options.describe_methods() + (f" ({g.arch})" if several else "")
                                       for g in groups),
                  "control": "; ".join(g.describe_control() for g in groups),
                  "device": str(options.device)}
        results = probe_backbones(groups, data, out=self.out, cache_dir=cache_dir, clock=self.clock,
                                  settings=header, positive_controls=positive_controls)
        write_run_report(self.out, results, self.clock)
        return results


@contextlib.contextmanager
def run_session(out: str | os.PathLike) -> Iterator[RunSession]:
    """Hold ``out`` for one run: its lock, and ``out/run.log`` receiving the run's log records."""
    out = Path(out)
    with locked_output_dir(out), run_log(out / LOG_FILE):
        yield RunSession(out)
