"""The run report: ``report.html`` (one offline page), ``metrics.json`` and ``figures/*.png``.

The pipeline fills a :class:`RunResults` (see :mod:`probe.report.results`), verdicts included,
and calls :func:`write_report`. The report only renders: it never computes a figure or a verdict.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from probe.errors import environment_error
from probe.fileio import atomic_write_json, atomic_write_text

from .figures import write_figures, write_side_by_side
from .html import render_html
from .metrics_json import SCHEMA, build_metrics, validate_metrics
from .results import (
    BackboneResults,
    BackboneVerdicts,
    Clustering,
    Curve,
    MapRow,
    Member,
    MethodResults,
    PseudoClass,
    RunResults,
    SanityCurve,
    SideBySide,
    SkippedImage,
    SpecificityExample,
    SpecificitySummary,
)

__all__ = [
    "SCHEMA",
    "BackboneResults",
    "BackboneVerdicts",
    "Clustering",
    "Curve",
    "MapRow",
    "Member",
    "MethodResults",
    "PseudoClass",
    "RunResults",
    "SanityCurve",
    "SideBySide",
    "SkippedImage",
    "SpecificityExample",
    "SpecificitySummary",
    "build_metrics",
    "validate_metrics",
    "write_report",
]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _install(staging: Path, out: Path) -> None:
    """Move a finished report from ``staging`` into ``out``; report.html is removed first and placed last.

    Until the final rename there is no report.html in ``out``, so an interrupted install never
    shows a page whose figures or metrics belong to another run.
    """
    (out / "report.html").unlink(missing_ok=True)
    old_figures = out / f".figures-old-{uuid.uuid4().hex}"
    had_figures = (out / "figures").exists()
    if had_figures:
        os.replace(out / "figures", old_figures)
    mode = 0o666 & ~_umask()
    for name in ("metrics.json", "report.html"):
        os.chmod(staging / name, mode)  # the atomic writer's temp files are private; a report is meant to be read
    os.replace(staging / "figures", out / "figures")
    os.replace(staging / "metrics.json", out / "metrics.json")
    os.replace(staging / "report.html", out / "report.html")
    _fsync_dir(out)
    if had_figures:
        shutil.rmtree(old_figures, ignore_errors=True)


def write_report(out_dir: str | os.PathLike, results: RunResults) -> Path:
    """Write ``report.html``, ``metrics.json`` and ``figures/`` into ``out_dir``; returns the page's path.

    Everything is first built in a hidden staging folder inside ``out_dir``; if anything fails
    there, ``out_dir`` is left exactly as it was (an earlier report stays whole).
    """
    results.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = build_metrics(results)
    staging = Path(tempfile.mkdtemp(prefix=".report-staging-", dir=out))
    try:
        (staging / "figures").mkdir()
        figures = write_figures(results, staging)
        side_by_side = write_side_by_side(results, staging)
        atomic_write_json(staging / "metrics.json", metrics)
        atomic_write_text(staging / "report.html", render_html(results, figures, side_by_side))
        _install(staging, out)
    except OSError as exc:  # a full disk while writing figures names the report folder, not a hidden temp file
        error = environment_error(exc, out)
        if error is None or error is exc:
            raise
        raise error from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / "report.html"
