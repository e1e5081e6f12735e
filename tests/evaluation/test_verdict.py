"""The semantic-evidence rule, case by case: three outcomes from intervals of differences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from probe.evaluation import AGREEMENT_MARGIN, Evidence, judge
from probe.evaluation.intervals import RESAMPLES, Estimate, Resampling, constant
from probe.evaluation.verdict import FAILS, INCONCLUSIVE, PASSES, Check, compare, decide


def est(value: float, low: float, high: float) -> Estimate:
    """An estimate whose replicates have exactly the 95 % percentile interval [low, high]."""
    width = (high - low) / 0.95
    start = low - 0.025 * width
    return Estimate(value, low, high, np.linspace(start, start + width, RESAMPLES))


def c(value: float) -> Estimate:
    """A baseline known exactly: differences to it keep the figure's interval, shifted."""
    return constant(value)


# Every test passes comfortably here; each case below breaks one thing.
GOOD = Evidence(
    agreement=est(0.80, 0.75, 0.85),
    agreement_control=c(0.30),
    pointing=est(0.75, 0.68, 0.82),
    pointing_control=c(0.40),
    pointing_centre=c(0.50),
    energy=est(0.60, 0.56, 0.64),
    energy_control=c(0.35),
    energy_uniform=c(0.30),
    faithfulness_gap=est(0.50, 0.42, 0.58),
    faithfulness_gap_control=est(0.10, 0.05, 0.15),
)
NO_MASKS = dict(
    pointing=None, pointing_control=None, pointing_centre=None, energy=None, energy_control=None, energy_uniform=None
)


def test_all_evidence_passes_and_the_statement_gives_the_numbers():
    v = judge(GOOD, "Pseudo-class 3")
    assert (v.semantic, v.outcome) == (True, "semantic")
    assert (v.agreement, v.localisation, v.faithfulness) == (PASSES, PASSES, PASSES)
    assert v.statement.startswith("Pseudo-class 3: semantic evidence.")
    assert "purity 0.80 [0.75, 0.85] vs 0.30 [0.30, 0.30] for the random-init control" in v.statement
    assert "difference 0.50 [0.45, 0.55], minimum 0.10: passes" in v.statement
    assert "for the centre point" in v.statement and "for the mask area" in v.statement
    assert "perturbation gap 0.50 [0.42, 0.58] vs 0.00 [0.00, 0.00] for the random pixel order" in v.statement
    assert "the control's gap 0.10 [0.05, 0.15] is for reference only" in v.statement


def test_an_interval_below_the_margin_fails():
    v = judge(replace(GOOD, agreement=est(0.35, 0.32, 0.38)), "x")  # difference [0.02, 0.08] < 0.10
    assert v.agreement == FAILS and v.semantic is False and v.outcome == "not semantic"
    assert "no semantic evidence" in v.statement


def test_an_interval_across_the_margin_is_inconclusive():
    e = replace(GOOD, agreement=est(0.42, 0.36, 0.48))  # difference [0.06, 0.18] holds 0.10
    assert judge(e, "x").agreement == INCONCLUSIVE
    assert judge(e, "x").semantic is True  # the objects still pass, and nothing fails
    alone = judge(replace(e, **NO_MASKS), "x")
    assert (alone.semantic, alone.outcome) == (None, "inconclusive")
    assert "inconclusive evidence" in alone.statement


def test_a_point_estimate_above_the_margin_is_not_enough():
    wide = replace(GOOD, agreement=est(0.55, 0.25, 0.85), **NO_MASKS)  # difference 0.25 but [−0.05, 0.55]
    assert judge(wide, "x").agreement == INCONCLUSIVE


def test_margin_is_inclusive_despite_float_rounding():
    exact = replace(GOOD, agreement=est(0.40, 0.35, 0.45), agreement_control=c(0.25))  # low 0.35 − 0.25 = 0.0999…
    assert judge(exact, "x").agreement == PASSES
    below = replace(GOOD, agreement=est(0.38, 0.30 + AGREEMENT_MARGIN - 0.04, 0.30 + AGREEMENT_MARGIN - 0.01))
    assert judge(below, "x").agreement == FAILS


def test_localisation_must_beat_the_centre_baseline_too():
    v = judge(replace(GOOD, pointing_centre=c(0.75)), "x")  # beats the control (0.40) but not the centre point
    assert v.localisation == FAILS and v.semantic is False


def test_pointing_is_left_out_when_its_baseline_leaves_no_room():
    crowded = replace(GOOD, pointing=est(0.97, 0.94, 1.0), pointing_centre=c(0.95))
    v = judge(crowded, "x")
    assert v.localisation == PASSES and v.semantic is True
    assert "pointing game is left out" in v.statement
    assert [x.figure for x in v.check("localisation").comparisons] == ["AGF mask energy"] * 2
    assert judge(replace(crowded, energy=est(0.33, 0.30, 0.36)), "x").localisation == FAILS  # energy still decides
    room = replace(GOOD, pointing_centre=c(0.89), pointing=est(0.95, 0.92, 0.98))
    assert judge(room, "x").localisation == FAILS  # counted: [0.03, 0.09] lies below the minimum 0.10


def test_mask_energy_must_beat_the_mask_area():
    assert judge(replace(GOOD, energy_uniform=c(0.60)), "x").localisation == FAILS


def test_no_labels_and_no_masks_is_not_judged():
    v = judge(replace(GOOD, agreement=None, agreement_control=None, **NO_MASKS), "x")
    assert (v.semantic, v.outcome) == (None, "not judged") and v.faithfulness == PASSES
    assert "Labels (not judged)" in v.statement and "Objects (not judged)" in v.statement


def test_masks_without_labels_can_establish_semantics():
    v = judge(replace(GOOD, agreement=None, agreement_control=None), "x")
    assert v.semantic is True and v.agreement is None


def test_objects_count_only_when_faithfulness_passes():
    unfaithful = replace(GOOD, agreement=None, agreement_control=None, faithfulness_gap=est(0.02, -0.01, 0.04))
    v = judge(unfaithful, "x")
    assert v.localisation == PASSES and v.faithfulness == FAILS and v.semantic is None and not v.objects_counted
    assert "not counted: faithfulness fails" in v.statement
    unsure = judge(replace(unfaithful, faithfulness_gap=est(0.06, 0.01, 0.11)), "x")
    assert unsure.faithfulness == INCONCLUSIVE and unsure.semantic is None
    assert "not counted: faithfulness inconclusive" in unsure.statement
    # nor can unfaithful maps veto label agreement
    v = judge(replace(GOOD, faithfulness_gap=est(-0.2, -0.3, -0.1), pointing=est(0.1, 0.05, 0.15)), "x")
    assert v.localisation == FAILS and v.semantic is True


def test_faithfulness_is_judged_against_a_random_order_not_the_control():
    # a lower gap than the control's still passes: gaps of different models are not compared
    v = judge(replace(GOOD, faithfulness_gap_control=est(0.6, 0.5, 0.7)), "x")
    assert v.faithfulness == PASSES
    assert judge(replace(GOOD, faithfulness_gap=est(0.0, -0.02, 0.02)), "x").faithfulness == FAILS


def test_missing_control_means_not_judged():
    v = judge(replace(GOOD, agreement_control=None, pointing_control=None), "x")
    assert v.agreement is None and v.localisation is None and v.semantic is None


def test_tiny_pseudo_classes_are_not_judged():
    v = judge(replace(GOOD, size=4), "Pseudo-class 9")
    assert (v.semantic, v.agreement, v.localisation, v.faithfulness) == (None, None, None, None)
    assert v.statement == "Pseudo-class 9: too small to judge (4 members; the verdict needs at least 5)."
    assert judge(replace(GOOD, size=5), "x").semantic is True


def test_a_figure_without_an_interval_is_inconclusive():
    v = judge(replace(GOOD, agreement=Estimate(0.9), **NO_MASKS), "x")
    assert v.agreement == INCONCLUSIVE


def test_the_same_images_give_a_paired_and_narrower_comparison():
    # pointing game and centre point on the same 100 images: the pointing game hits wherever the centre does
    # and on 20 more. Paired, the difference interval is tight; resampled independently it is not.
    rng = np.random.default_rng(0)
    centre = (rng.random(100) < 0.5).astype(float)
    pointing = centre.copy()
    pointing[np.flatnonzero(centre == 0)[:20]] = 1.0
    same = Resampling.stratified(100, seed=1)
    paired = compare("pointing", same.mean(pointing), "centre point", same.mean(centre), 0.1)
    other = Resampling.stratified(100, seed=2)
    independent = compare("pointing", same.mean(pointing), "centre point", other.mean(centre), 0.1)
    assert paired.difference.value == pytest.approx(0.2) == independent.difference.value
    assert paired.outcome == PASSES and independent.outcome == INCONCLUSIVE


def test_decide_works_from_stored_checks():
    tests = (
        Check("agreement", (compare("NMI", est(0.5, 0.4, 0.6), "random-init control", c(0.0), 0.1),)),
        Check("localisation"),
        Check("faithfulness"),
    )
    v = decide(tests, "Backbone b")
    assert (v.semantic, v.agreement, v.localisation, v.faithfulness) == (True, PASSES, None, None)
