"""The semantic-evidence verdict: a documented rule from figures with 95 % intervals to a plain statement.

Each test compares figures with baselines. One comparison looks at the interval of the
difference (figure − baseline): it **passes** when the interval lies wholly at or above the
minimum effect (the test's margin), **fails** when it lies wholly below, and is
**inconclusive** otherwise. A test passes when all its comparisons pass, fails when one
fails, and is inconclusive otherwise; it is *not judged* (``None``) when a figure or a
baseline is missing.

- labels (needs labels): purity of the pseudo-class (NMI for a whole backbone) against the
  random-init control's, by :data:`AGREEMENT_MARGIN`;
- objects (needs masks): the primary method's pointing game against the control's and the
  centre point's, by :data:`POINTING_MARGIN`, and its mask energy against the control's and
  the mask area's (a uniform map's score), by :data:`ENERGY_MARGIN`. When a pointing baseline
  is already above 1 − :data:`POINTING_MARGIN` no map could beat it, so the pointing game is
  left out and the mask energy decides alone;
- faithfulness: the perturbation gap (negative − positive AUC, removed pixels blurred:
  :data:`FAITHFULNESS_REMOVAL`) against the gap of a random pixel order, which is 0 on any
  model, by :data:`FAITHFULNESS_MARGIN`. The control's gap is shown for reference only: gaps
  of different models are not comparable (docs/EVALUATION.md, "The faithfulness puzzle").

A pseudo-class with fewer than :data:`MIN_CLASS_SIZE` members is not judged at all. Object
evidence counts only when faithfulness passes. ``semantic`` is then False if labels or
(counted) objects fail, True if one of them passes and none fails, and None otherwise: the
verdict's outcome is *inconclusive* when a counted test is, else *not judged*.
"""

from __future__ import annotations

from dataclasses import dataclass

from .intervals import Estimate, constant, difference

AGREEMENT_MARGIN = 0.10
POINTING_MARGIN = 0.10
ENERGY_MARGIN = 0.05
FAITHFULNESS_MARGIN = 0.05
MIN_CLASS_SIZE = 5
#: What the report's perturbation test puts in place of removed pixels (the library default stays black).
FAITHFULNESS_REMOVAL = "blur"

PASSES, FAILS, INCONCLUSIVE = "passes", "fails", "inconclusive"
#: The verdict's outcomes, by ``semantic``; "inconclusive" replaces "not judged" when a counted test was.
SEMANTIC, NOT_SEMANTIC, VERDICT_INCONCLUSIVE, NOT_JUDGED = "semantic", "not semantic", "inconclusive", "not judged"
#: The three tests: key (metrics.json) and the word the report uses.
TESTS = (("agreement", "labels"), ("localisation", "objects"), ("faithfulness", "faithfulness"))
_TOLERANCE = 1e-9  # so that 0.35 − 0.25 counts as 0.10


@dataclass(frozen=True)
class Comparison:
    """One figure against one baseline; the interval of their difference decides against ``margin``."""

    figure: str
    value: Estimate
    baseline: str
    baseline_value: Estimate
    difference: Estimate | None
    margin: float

    @property
    def outcome(self) -> str:
        interval = self.difference.interval if self.difference is not None else None
        if interval is None:
            return INCONCLUSIVE
        low, high = interval
        if low >= self.margin - _TOLERANCE:
            return PASSES
        if high < self.margin - _TOLERANCE:
            return FAILS
        return INCONCLUSIVE


def compare(figure: str, value: Estimate, baseline: str, baseline_value: Estimate, margin: float) -> Comparison:
    """A :class:`Comparison` with the interval of ``value − baseline_value`` (paired or not, as their draws were)."""
    return Comparison(figure, value, baseline, baseline_value, difference(value, baseline_value), margin)


@dataclass(frozen=True)
class Check:
    """One test of the verdict: its comparisons (none: not judged), those left out, and a note for the statement."""

    key: str  # "agreement", "localisation" or "faithfulness"
    comparisons: tuple[Comparison, ...] = ()
    left_out: tuple[Comparison, ...] = ()
    note: str = ""

    @property
    def outcome(self) -> str | None:
        """passes / fails / inconclusive, or None (not judged)."""
        if not self.comparisons:
            return None
        outcomes = {c.outcome for c in self.comparisons}
        if FAILS in outcomes:
            return FAILS
        return PASSES if outcomes == {PASSES} else INCONCLUSIVE

    @property
    def word(self) -> str:
        return dict(TESTS)[self.key]


@dataclass(frozen=True)
class Evidence:
    """The figures one verdict is made from; ``None`` = not measured."""

    agreement: Estimate | None = None
    agreement_control: Estimate | None = None
    agreement_name: str = "purity"
    pointing: Estimate | None = None
    pointing_control: Estimate | None = None
    pointing_centre: Estimate | None = None
    energy: Estimate | None = None
    energy_control: Estimate | None = None
    energy_uniform: Estimate | None = None
    faithfulness_gap: Estimate | None = None
    faithfulness_gap_control: Estimate | None = None  # for reference only, never compared
    method: str = "agf"
    size: int | None = None  # members of a pseudo-class (None for a whole backbone)


@dataclass(frozen=True)
class Verdict:
    """The outcome of each test, the combined flag and outcome, and the statement shown in the report."""

    semantic: bool | None
    outcome: str  # SEMANTIC, NOT_SEMANTIC, VERDICT_INCONCLUSIVE or NOT_JUDGED
    checks: tuple[Check, ...]  # agreement, localisation, faithfulness (empty when not judged at all)
    objects_counted: bool
    statement: str

    def check(self, key: str) -> Check | None:
        return next((c for c in self.checks if c.key == key), None)

    @property
    def agreement(self) -> str | None:
        c = self.check("agreement")
        return c.outcome if c else None

    @property
    def localisation(self) -> str | None:
        c = self.check("localisation")
        return c.outcome if c else None

    @property
    def faithfulness(self) -> str | None:
        c = self.check("faithfulness")
        return c.outcome if c else None


def _agreement(e: Evidence) -> Check:
    if e.agreement is None or e.agreement_control is None:
        return Check("agreement")
    return Check(
        "agreement",
        (compare(e.agreement_name, e.agreement, "random-init control", e.agreement_control, AGREEMENT_MARGIN),),
    )


def _no_room(baseline: Estimate, margin: float) -> bool:
    """True when even a perfect rate (1.0) could not beat ``baseline`` by ``margin``."""
    return 1.0 - baseline.value < margin - _TOLERANCE


def _localisation(e: Evidence) -> Check:
    hits, hits_control, hits_centre = e.pointing, e.pointing_control, e.pointing_centre
    mass_in, mass_control, mass_uniform = e.energy, e.energy_control, e.energy_uniform
    if hits is None or hits_control is None or hits_centre is None:
        return Check("localisation")
    if mass_in is None or mass_control is None or mass_uniform is None:
        return Check("localisation")
    name = e.method.upper() if e.method == "agf" else e.method
    point, mass = f"{name} pointing game", f"{name} mask energy"
    pointing = (
        compare(point, hits, "random-init control", hits_control, POINTING_MARGIN),
        compare(point, hits, "centre point", hits_centre, POINTING_MARGIN),
    )
    energy = (
        compare(mass, mass_in, "random-init control", mass_control, ENERGY_MARGIN),
        compare(mass, mass_in, "mask area", mass_uniform, ENERGY_MARGIN),
    )
    if any(_no_room(c.baseline_value, POINTING_MARGIN) for c in pointing):
        return Check(
            "localisation", energy, pointing, "the pointing game is left out: its baseline leaves no room to beat it"
        )
    return Check("localisation", pointing + energy)


def _faithfulness(e: Evidence) -> Check:
    if e.faithfulness_gap is None:
        return Check("faithfulness")
    note = ""
    if e.faithfulness_gap_control is not None:
        note = (
            f"the control's gap {e.faithfulness_gap_control} is for reference only: gaps of different models "
            "are not comparable"
        )
    return Check(
        "faithfulness",
        (compare("perturbation gap", e.faithfulness_gap, "random pixel order", constant(0.0), FAITHFULNESS_MARGIN),),
        note=note,
    )


def checks(evidence: Evidence) -> tuple[Check, Check, Check]:
    """The three tests of ``evidence``, each with its comparisons."""
    return _agreement(evidence), _localisation(evidence), _faithfulness(evidence)


def _difference_text(c: Comparison) -> str:
    d = "n/a" if c.difference is None else str(c.difference)
    return f"difference {d}, minimum {c.margin:.2f}"


def _comparison_text(c: Comparison) -> str:
    return f"{c.figure} {c.value} vs {c.baseline_value} for the {c.baseline} ({_difference_text(c)}: {c.outcome})"


def _check_text(check: Check, counted: bool, faithfulness: str | None) -> str:
    word = check.word.capitalize()
    outcome = check.outcome or "not judged"
    if not check.comparisons:
        need = {
            "agreement": "no labels or no control",
            "localisation": "no masks or no control",
            "faithfulness": "not measured",
        }[check.key]
        return f"{word} (not judged): {need}."
    note = ""
    if not counted:
        note = f"; not counted: faithfulness {faithfulness or 'not judged'}"
    body = "; ".join(_comparison_text(c) for c in check.comparisons)
    extra = f" Note: {check.note}." if check.note else ""
    return f"{word} ({outcome}{note}): {body}.{extra}"


def decide(tests: tuple[Check, ...], subject: str) -> Verdict:
    """The rule of this module applied to the three tests (agreement, localisation, faithfulness)."""
    agreement, localisation, faithfulness = tests
    counted = faithfulness.outcome == PASSES
    outcomes = [agreement.outcome, localisation.outcome if counted else None]
    if FAILS in outcomes:
        semantic, outcome = False, NOT_SEMANTIC
    elif PASSES in outcomes:
        semantic, outcome = True, SEMANTIC
    else:
        semantic, outcome = None, VERDICT_INCONCLUSIVE if INCONCLUSIVE in outcomes else NOT_JUDGED
    head = {
        SEMANTIC: "semantic evidence",
        NOT_SEMANTIC: "no semantic evidence",
        VERDICT_INCONCLUSIVE: "inconclusive evidence",
        NOT_JUDGED: "not enough evidence to judge",
    }[outcome]
    parts = [
        f"{subject}: {head}.",
        _check_text(agreement, True, None),
        _check_text(localisation, counted or localisation.outcome is None, faithfulness.outcome),
        _check_text(faithfulness, True, None),
    ]
    return Verdict(semantic, outcome, tests, counted, " ".join(parts))


def judge(evidence: Evidence, subject: str) -> Verdict:
    """Apply the rule of this module to ``evidence``; ``subject`` starts the statement (e.g. "Pseudo-class 3")."""
    if evidence.size is not None and evidence.size < MIN_CLASS_SIZE:
        return Verdict(
            None,
            NOT_JUDGED,
            (),
            False,
            f"{subject}: too small to judge ({evidence.size} members; the verdict needs at least {MIN_CLASS_SIZE}).",
        )
    return decide(checks(evidence), subject)
