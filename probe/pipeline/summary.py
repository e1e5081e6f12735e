"""The short table printed in the terminal at the end of a run."""

from __future__ import annotations

from probe.evaluation.intervals import Estimate
from probe.report import RunResults


def _cell(value: Estimate | None) -> str:
    return "-" if value is None else value.format()


def summary_table(results: RunResults) -> str:
    """Per backbone: NMI, its primary method with that method's mask energy and pointing game, Grad-CAM mask
    energy (CNNs), faithfulness gap (each with its 95 % interval) and the verdict's outcome, as aligned text."""
    header = ["backbone", "role", "NMI", "method", "energy", "pointing", "gradcam energy", "gap", "verdict"]
    rows = [header]
    for b in results.backbones:
        primary = b.methods[b.method]
        gradcam = b.methods.get("gradcam")
        verdict = "control" if not b.judged else results.verdicts[b.name].backbone.outcome
        rows.append(
            [
                b.name,
                b.role,
                _cell(b.clustering.nmi),
                b.method,
                _cell(primary.mask_energy),
                _cell(primary.pointing_game),
                _cell(gradcam.mask_energy if gradcam else None),
                _cell(primary.faithfulness_gap),
                verdict,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    text = (0, 1, 3, len(header) - 1)  # left-aligned columns
    lines = [
        "  ".join(
            cell.ljust(w) if i in text else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def closing_summary(results: RunResults, out: str) -> str:
    """What a command prints at the end: the summary table, where the report is, the stage timings."""
    timings = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in results.timings.items())
    return f"{summary_table(results)}\n\nreport: {out}/report.html  (metrics: {out}/metrics.json; {timings})"
