"""The semantic-evidence verdict: a documented rule from numbers to a plain statement.

Three independent tests, each passed only when the probed backbone beats its baselines by
an explicit margin (absolute difference, all figures in [0, 1]):

- agreement (needs labels): purity of the pseudo-class (NMI for a whole backbone) exceeds
  the random-init control's by at least :data:`AGREEMENT_MARGIN`;
- localisation (needs masks): the primary method's pointing-game rate exceeds both the
  control's and the centre-point baseline by :data:`POINTING_MARGIN`, AND its mask energy
  exceeds both the control's and the mask's area share (a uniform map's score) by
  :data:`ENERGY_MARGIN`. When a pointing baseline is already above 1 − :data:`POINTING_MARGIN`
  (objects so large or many that the centre point hits them), no map could pass the pointing
  part, so it is left out and the mask energy decides alone;
- faithfulness: the perturbation gap (negative AUC − positive AUC) is positive and exceeds
  the control's by :data:`FAITHFULNESS_MARGIN`.

A pseudo-class with fewer than :data:`MIN_CLASS_SIZE` members is not judged at all (its
purity and means are too noisy). A test with a missing figure or baseline is ``None`` (not measured). Localisation only
counts as evidence when the maps are faithful (otherwise it is treated as not measured).
``semantic`` is then False if agreement or (counted) localisation fails, True if at least
one of them passes and none fails, and None when neither could be judged.
"""

from __future__ import annotations

from dataclasses import dataclass

AGREEMENT_MARGIN = 0.10
POINTING_MARGIN = 0.10
ENERGY_MARGIN = 0.05
FAITHFULNESS_MARGIN = 0.05
MIN_CLASS_SIZE = 5


@dataclass(frozen=True)
class Evidence:
    """The figures one verdict is made from; ``None`` = not measured."""

    agreement: float | None = None
    agreement_control: float | None = None
    agreement_name: str = "purity"
    pointing: float | None = None
    pointing_control: float | None = None
    pointing_centre: float | None = None
    energy: float | None = None
    energy_control: float | None = None
    energy_uniform: float | None = None
    faithfulness_gap: float | None = None
    faithfulness_gap_control: float | None = None
    method: str = "agf"
    size: int | None = None  # members of a pseudo-class (None for a whole backbone)


@dataclass(frozen=True)
class Verdict:
    """Outcome of each test, the combined flag, and the statement shown in the report."""

    semantic: bool | None
    agreement: bool | None
    localisation: bool | None
    faithfulness: bool | None
    statement: str


def _missing(*values: float | None) -> bool:
    return any(v is None for v in values)


def _beats(value: float, baseline: float, margin: float) -> bool:
    """``value - baseline >= margin``, with a 1e-9 allowance so that 0.35 − 0.25 counts as 0.10."""
    return value - baseline >= margin - 1e-9


def _agreement(e: Evidence) -> bool | None:
    if _missing(e.agreement, e.agreement_control):
        return None
    return _beats(e.agreement, e.agreement_control, AGREEMENT_MARGIN)


def _localisation(e: Evidence) -> bool | None:
    needed = (e.pointing, e.pointing_control, e.pointing_centre, e.energy, e.energy_control, e.energy_uniform)
    if _missing(*needed):
        return None
    energy = _beats(e.energy, max(e.energy_control, e.energy_uniform), ENERGY_MARGIN)
    if _pointing_uninformative(e):
        return energy
    return _beats(e.pointing, max(e.pointing_control, e.pointing_centre), POINTING_MARGIN) and energy


def _pointing_uninformative(e: Evidence) -> bool:
    """True when even a perfect pointing rate (1.0) could not beat the baselines by the margin."""
    return not _beats(1.0, max(e.pointing_control, e.pointing_centre), POINTING_MARGIN)


def _faithfulness(e: Evidence) -> bool | None:
    if _missing(e.faithfulness_gap, e.faithfulness_gap_control):
        return None
    return e.faithfulness_gap > 0 and _beats(e.faithfulness_gap, e.faithfulness_gap_control, FAITHFULNESS_MARGIN)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _word(result: bool | None) -> str:
    return {True: "passes", False: "fails", None: "not judged"}[result]


def judge(evidence: Evidence, subject: str) -> Verdict:
    """Apply the rule of this module to ``evidence``; ``subject`` starts the statement (e.g. "Pseudo-class 3")."""
    if evidence.size is not None and evidence.size < MIN_CLASS_SIZE:
        return Verdict(None, None, None, None, f"{subject}: too small to judge ({evidence.size} members; "
                                               f"the verdict needs at least {MIN_CLASS_SIZE}).")
    agreement = _agreement(evidence)
    localisation = _localisation(evidence)
    faithfulness = _faithfulness(evidence)
    counted_localisation = localisation if faithfulness else None
    if agreement is False or counted_localisation is False:
        semantic: bool | None = False
    elif agreement or counted_localisation:
        semantic = True
    else:
        semantic = None
    head = {True: "semantic evidence", False: "no semantic evidence", None: "not enough evidence to judge"}[semantic]
    m = evidence.method.upper() if evidence.method == "agf" else evidence.method
    parts = [f"{subject}: {head}."]
    if evidence.agreement is None:
        parts.append("Labels: none, agreement not measured.")
    else:
        parts.append(
            f"Labels ({_word(agreement)}): {evidence.agreement_name} {_fmt(evidence.agreement)} "
            f"vs {_fmt(evidence.agreement_control)} for the random-init control."
        )
    if evidence.pointing is None and evidence.energy is None:
        parts.append("Masks: none, localisation not measured.")
    else:
        note = ""
        if localisation is not None and not faithfulness:
            why = "the maps are not faithful" if faithfulness is False else "faithfulness not measured"
            note = f" (not counted: {why})"
        if localisation is not None and _pointing_uninformative(evidence):
            note += "; the pointing game is not counted: its baseline leaves no room to beat it"
        parts.append(
            f"Objects ({_word(localisation)}{note}): {m} points at the object in {_fmt(evidence.pointing)} of images "
            f"(control {_fmt(evidence.pointing_control)}, centre {_fmt(evidence.pointing_centre)}), "
            f"mask energy {_fmt(evidence.energy)} (control {_fmt(evidence.energy_control)}, "
            f"mask area {_fmt(evidence.energy_uniform)})."
        )
    parts.append(
        f"Faithfulness ({_word(faithfulness)}): perturbation AUC gap {_fmt(evidence.faithfulness_gap)} "
        f"vs {_fmt(evidence.faithfulness_gap_control)} for the control."
    )
    return Verdict(semantic, agreement, localisation, faithfulness, " ".join(parts))
