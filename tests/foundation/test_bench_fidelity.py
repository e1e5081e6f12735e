"""The fidelity benchmark's comparison (probe.bench.fidelity.compare): what counts as the same report."""

from __future__ import annotations

import copy

from probe.bench.fidelity import compare


def _figure(value: float, half: float = 0.05) -> dict:
    return {"value": value, "low": value - half, "high": value + half}


def _metrics(gap: float, class_gap: float, outcome: str = "semantic") -> dict:
    check = {"outcome": outcome, "counted": True, "comparisons": [], "left_out": [], "note": ""}
    evidence = {"agreement": check, "localisation": check, "faithfulness": None}
    figures = {"faithfulness_gap": _figure(gap), "pointing_game": _figure(0.5), "mask_energy": None}
    return {
        "backbones": [
            {
                "name": "probe",
                "outcome": outcome,
                "evidence": evidence,
                "attribution": {"agf": figures},
                "pseudo_classes": [{"id": 0, "outcome": outcome, "faithfulness_gap": _figure(class_gap)}],
            }
        ]
    }


def test_values_inside_the_fast_interval_and_equal_verdicts_agree():
    result = compare(_metrics(0.30, 0.20), _metrics(0.32, 0.22))
    assert result["same_verdicts"]
    assert {(r["figure"], r["agrees"]) for r in result["rows"]} == {("faithfulness_gap", True), ("pointing_game", True)}
    assert result["per_class"] == {"agree": 1, "total": 1, "outside": []}


def test_a_value_outside_the_interval_and_a_changed_verdict_are_reported():
    fast = _metrics(0.40, 0.35)
    slow = _metrics(0.30, 0.20)
    slow["backbones"][0]["pseudo_classes"][0]["outcome"] = "inconclusive"
    result = compare(slow, fast)
    assert not result["same_verdicts"]
    gap = next(r for r in result["rows"] if r["figure"] == "faithfulness_gap")
    assert gap["agrees"] is False
    assert result["per_class"]["outside"][0]["figure"] == "faithfulness_gap"
    missing = copy.deepcopy(fast)
    missing["backbones"][0]["attribution"]["agf"]["faithfulness_gap"] = {"value": 0.3, "low": None, "high": None}
    assert next(r for r in compare(slow, missing)["rows"] if r["figure"] == "faithfulness_gap")["agrees"] is None
