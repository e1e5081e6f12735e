"""The semantic-evidence rule, case by case."""

from __future__ import annotations

from dataclasses import replace

from probe.evaluation import AGREEMENT_MARGIN, Evidence, judge

# Every test passes comfortably here; each case below breaks one thing.
GOOD = Evidence(
    agreement=0.80, agreement_control=0.30,
    pointing=0.75, pointing_control=0.40, pointing_centre=0.50,
    energy=0.60, energy_control=0.35, energy_uniform=0.30,
    faithfulness_gap=0.50, faithfulness_gap_control=0.10,
)
NO_MASKS = dict(pointing=None, pointing_control=None, pointing_centre=None, energy=None, energy_control=None, energy_uniform=None)


def test_all_evidence_passes():
    v = judge(GOOD, "Pseudo-class 3")
    assert (v.semantic, v.agreement, v.localisation, v.faithfulness) == (True, True, True, True)
    assert v.statement.startswith("Pseudo-class 3: semantic evidence.")
    assert "purity 0.80 vs 0.30" in v.statement and "centre 0.50" in v.statement and "gap 0.50 vs 0.10" in v.statement


def test_label_agreement_failing_makes_it_not_semantic():
    v = judge(replace(GOOD, agreement=0.35), "x")
    assert v.agreement is False and v.semantic is False
    assert "no semantic evidence" in v.statement


def test_margin_is_inclusive_despite_float_rounding():
    assert judge(replace(GOOD, agreement=0.35, agreement_control=0.25), "x").agreement is True  # 0.35 − 0.25 = 0.0999…
    assert judge(replace(GOOD, agreement=0.30 + AGREEMENT_MARGIN - 0.01), "x").agreement is False


def test_localisation_must_beat_the_centre_baseline_too():
    v = judge(replace(GOOD, pointing_centre=0.70), "x")  # beats the control (0.40) but not the centre point + margin
    assert v.localisation is False and v.semantic is False


def test_pointing_is_left_out_when_its_baseline_leaves_no_room():
    # the centre point hits an object in 0.95 of images: no map can beat that by 0.10
    crowded = replace(GOOD, pointing=0.97, pointing_centre=0.95)
    v = judge(crowded, "x")
    assert v.localisation is True and v.semantic is True
    assert "pointing game is not counted" in v.statement
    assert judge(replace(crowded, energy=0.33), "x").localisation is False  # the mask energy still decides
    assert judge(replace(GOOD, pointing_centre=0.89, pointing=0.95), "x").localisation is False  # room left: counted


def test_mask_energy_must_beat_the_mask_area():
    assert judge(replace(GOOD, energy_uniform=0.58), "x").localisation is False


def test_no_labels_and_no_masks_is_not_judged():
    v = judge(replace(GOOD, agreement=None, agreement_control=None, **NO_MASKS), "x")
    assert v.semantic is None and v.faithfulness is True
    assert "Labels: none" in v.statement and "Masks: none" in v.statement


def test_masks_without_labels_can_establish_semantics():
    v = judge(replace(GOOD, agreement=None, agreement_control=None), "x")
    assert v.semantic is True and v.agreement is None


def test_unfaithful_maps_do_not_count_as_localisation_evidence():
    e = replace(GOOD, agreement=None, agreement_control=None, faithfulness_gap=0.05)
    v = judge(e, "x")
    assert v.localisation is True and v.faithfulness is False and v.semantic is None
    assert "not counted: the maps are not faithful" in v.statement
    # nor can unfaithful maps veto label agreement
    v = judge(replace(GOOD, faithfulness_gap=-0.2, pointing=0.1), "x")
    assert v.localisation is False and v.semantic is True


def test_a_negative_gap_never_passes_faithfulness():
    assert judge(replace(GOOD, faithfulness_gap=-0.05, faithfulness_gap_control=-0.50), "x").faithfulness is False


def test_missing_control_means_not_judged():
    v = judge(replace(GOOD, agreement_control=None, pointing_control=None), "x")
    assert v.agreement is None and v.localisation is None and v.semantic is None


def test_tiny_pseudo_classes_are_not_judged():
    v = judge(replace(GOOD, size=4), "Pseudo-class 9")
    assert (v.semantic, v.agreement, v.localisation, v.faithfulness) == (None, None, None, None)
    assert v.statement == "Pseudo-class 9: too small to judge (4 members; the verdict needs at least 5)."
    assert judge(replace(GOOD, size=5), "x").semantic is True
