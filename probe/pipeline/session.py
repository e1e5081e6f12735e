"""A run's session on its output folder: the lock, ``run.log``, the stage clock, the report header,
and stage report at the end. ``probe run`` and ``probe demo`` differ only in what they load."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import backbones
from probe.devices import resolve_device
from probe.errors import OutputError, ProbeError
from probe.fileio import atomic_write_json, locked_output_dir
from probe.report import RunResults, write_report
from unsupervised import ImageFolderData, distributed
from unsupervised.distributed import Group

from .compare import group_by_arch, probe_backbones
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
    """An output folder held by one run (locked, logging to run.log) and the clock of its stages.

    Under torchrun every rank has a session on the same folder; rank 0 holds the lock, writes run.log
    and the report, the other ranks take their share of the work.
    """

    out: Path
    clock: StageClock = field(default_factory=StageClock)
    group: Group = field(default_factory=Group)

    def probe(
        self,
        probes: Sequence[tuple[str, backbones.Backbone]],
        data: ImageFolderData,
        options: ProbeOptions,
        *,
        settings: Mapping[str, str | int | float],
        cache_dir: str | os.PathLike | None = None,
        positive_controls: Collection[str] = (),
    ) -> RunResults:
        """Probe ``probes`` on ``data``, each architecture against its random-init control, and write the report.

        ``settings`` head the report's settings; k, seed, methods, control and device follow. The methods
        are settled (and a given one that cannot explain a backbone refused) before any heavy work.
        ``positive_controls`` names the probed backbones known to be semantic (role "positive control").
        """
        archs = group_by_arch(probes, options)
        several = len(archs) > 1
        header = {
            **settings,
            "k": options.k,
            "seed": options.seed,
            "methods": "; ".join(a.options.describe_methods() + (f" ({a.arch})" if several else "") for a in archs),
            "control": "; ".join(a.describe_control() for a in archs),
            "device": str(options.device),
        }
        results = probe_backbones(
            archs,
            data,
            out=self.out,
            cache_dir=cache_dir,
            clock=self.clock,
            settings=header,
            positive_controls=positive_controls,
            group=self.group,
        )
        problem: BaseException | None = None
        if self.group.is_main:
            try:
                write_run_report(self.out, results, self.clock)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
                problem = exc
        if not self.group.all_true(problem is None):  # no rank returns before the report is written
            raise problem or OutputError(f"rank 0 could not write the report to {self.out}; see its error")
        return results


@contextlib.contextmanager
def run_session(out: str | os.PathLike, device: str | torch.device = "cpu") -> Iterator[RunSession]:
    """Hold ``out`` for one run: its lock, and ``out/run.log`` receiving the run's log records.

    Under torchrun (``WORLD_SIZE`` > 1) the process group is joined here (gloo on CPU, nccl on CUDA
    ``device``); rank 0 holds the lock and the log, and the other ranks start once it does.
    """
    out = Path(out)
    group = distributed.join(resolve_device(device))
    with contextlib.ExitStack() as held:
        problem: ProbeError | None = None
        if group.is_main:
            try:
                held.enter_context(locked_output_dir(out))
                held.enter_context(run_log(out / LOG_FILE))
            except ProbeError as exc:
                problem = exc
        if not group.all_true(problem is None):
            raise problem or OutputError(f"rank 0 could not hold the output directory {out}; see its error")
        if group.world_size > 1 and group.is_main:
            log.info(
                "%d processes (torchrun): explain and evaluate dealt to the ranks, rank 0 writes", group.world_size
            )
        yield RunSession(out, group=group)
