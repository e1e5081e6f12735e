"""The verdict rule on backbones whose answer is known: the stored inputs, judged again, give the stored outcomes
and the false-positive and false-negative rates that docs/EVALUATION.md reports."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from probe.evaluation.intervals import Estimate
from probe.evaluation.verdict import Check, Comparison, decide

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "known_answer_verdicts.json"
DOC = ROOT / "docs" / "EVALUATION.md"
TESTS = ("agreement", "localisation", "faithfulness")
ROW = re.compile(
    r"^\| (agreement|localisation|faithfulness|verdict)\b[^|]*\| (\d+) of (\d+) \| (\d+) of (\d+) \|", re.MULTILINE
)


def _estimate(obj: dict | None) -> Estimate | None:
    return None if obj is None else Estimate(obj["value"], obj["low"], obj["high"])


def _comparison(obj: dict) -> Comparison:
    return Comparison(
        obj["figure"],
        _estimate(obj["value"]),
        obj["baseline"],
        _estimate(obj["baseline_value"]),
        _estimate(obj["difference"]),
        obj["margin"],
    )


def _check(key: str, obj: dict | None) -> Check:
    if obj is None:
        return Check(key)
    return Check(key, tuple(map(_comparison, obj["comparisons"])), tuple(map(_comparison, obj["left_out"])))


@pytest.fixture(scope="module")
def known() -> dict:
    return json.loads(DATA.read_text())


def _judged(backbone: dict):
    return decide(tuple(_check(key, backbone["tests"][key]) for key in TESTS), backbone["backbone"])


def test_every_kind_has_five_training_seeds_and_its_expected_answer(known):
    kinds = Counter(b["kind"] for b in known["backbones"])
    assert kinds["supervised"] >= 5 and all(n >= 5 for n in kinds.values()), kinds
    assert len(kinds) >= 3  # the positive and at least two kinds of negative
    for b in known["backbones"]:
        assert b["expected"] == ("semantic" if b["kind"] == "supervised" else "not semantic")


def test_the_rule_judges_the_stored_inputs_as_the_run_did(known):
    for b in known["backbones"]:
        v = _judged(b)
        assert (v.semantic, v.outcome) == (b["semantic"], b["outcome"]), b["backbone"]
        for key in TESTS:
            stored = b["tests"][key]
            assert v.check(key).outcome == (stored["outcome"] if stored else None), (b["backbone"], key)


def _rates(known: dict) -> dict[str, tuple[int, int, int, int]]:
    """Per test and for the verdict: (false positives, negatives, false negatives, positives)."""
    counts = {key: [0, 0, 0, 0] for key in (*TESTS, "verdict")}
    for b in known["backbones"]:
        v = _judged(b)
        positive = b["expected"] == "semantic"
        outcomes = {key: v.check(key).outcome for key in TESTS}
        outcomes["verdict"] = "passes" if v.semantic is True else "fails"
        for key, outcome in outcomes.items():
            c = counts[key]
            if positive:
                c[2] += outcome != "passes"
                c[3] += 1
            else:
                c[0] += outcome == "passes"
                c[1] += 1
    return {key: tuple(c) for key, c in counts.items()}


def test_the_documented_rates_are_those_of_the_stored_inputs(known):
    documented = {m[0]: tuple(int(x) for x in m[1:]) for m in ROW.findall(DOC.read_text())}
    assert set(documented) == {*TESTS, "verdict"}, "docs/EVALUATION.md has no complete known-answer table"
    assert documented == _rates(known)


def test_no_negative_backbone_is_judged_semantic(known):
    fp, negatives, _, _ = _rates(known)["verdict"]
    assert negatives >= 10 and fp == 0
