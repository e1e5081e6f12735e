"""metrics.json: structure, nulls where labels/masks are absent, no NaN, and the validator."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from probe.errors import ProbeValueError
from probe.evaluation.intervals import Estimate
from probe.report import build_metrics, validate_metrics, write_report
from tests.support.results import HOSTILE_BACKBONE, make_results


def _metrics(**kw) -> dict:
    results = make_results(**kw)
    return build_metrics(results)


def test_full_results_have_the_issue_fields():
    m = _metrics()
    probe, control = m["backbones"]
    assert (probe["name"], probe["role"], probe["control"]) == (HOSTILE_BACKBONE, "probe", "random-init control")
    assert control["role"] == "control" and control["semantic"] is None and control["outcome"] == "not judged"
    assert m["schema_version"] == 3 and m["protocol"]["perturbation_removal"] == "blur"
    assert set(probe["clustering"]) >= {"k", "nmi", "ari", "accuracy"}
    agf = probe["attribution"]["agf"]
    assert set(agf) >= {
        "positive_perturbation_auc",
        "negative_perturbation_auc",
        "pointing_game",
        "mask_energy",
        "miou",
    }
    assert agf["perturbation_curves"]["fractions"][0] == 0.0 and len(agf["perturbation_curves"]["positive"]) == 10
    assert set(probe["attribution"]) == {"agf", "gradcam", "integrated_gradients"}
    pc = probe["pseudo_classes"][0]
    assert set(pc) >= {"id", "size", "majority_label", "purity", "semantic", "outcome", "evidence"}
    assert probe["semantic"] is True and probe["outcome"] == "semantic" and pc["semantic"] is True
    assert agf["undefined"] == {"pointing_game": 1, "mask_energy": 0}


def test_every_figure_carries_its_interval():
    m = _metrics()
    probe = m["backbones"][0]
    nmi = probe["clustering"]["nmi"]
    assert set(nmi) == {"value", "low", "high"} and nmi["low"] < nmi["value"] == 0.6 < nmi["high"]
    agf = probe["attribution"]["agf"]
    for key in ("positive_perturbation_auc", "faithfulness_gap", "pointing_game", "mask_energy", "miou"):
        assert agf[key]["low"] < agf[key]["value"] < agf[key]["high"], key
    assert agf["faithfulness_gap"]["value"] == pytest.approx(
        agf["negative_perturbation_auc"]["value"] - agf["positive_perturbation_auc"]["value"]
    )
    assert all(p["low"] <= p["high"] for p in agf["perturbation_curves"]["positive"])
    assert agf["sanity"]["similarity"][1]["value"] == 0.6 and agf["specificity"]["pearson"]["low"] is not None
    assert probe["baselines"]["mask_fraction"]["high"] > 0.25


def test_each_test_of_the_verdict_lists_its_comparisons():
    probe = _metrics()["backbones"][0]
    agreement = probe["evidence"]["agreement"]
    assert agreement["outcome"] == "passes" and agreement["counted"] is True
    (nmi,) = agreement["comparisons"]
    assert (nmi["figure"], nmi["baseline"], nmi["margin"], nmi["outcome"]) == (
        "NMI",
        "random-init control",
        0.1,
        "passes",
    )
    assert nmi["difference"]["value"] == pytest.approx(0.55) and nmi["difference"]["low"] > 0.1
    localisation = probe["evidence"]["localisation"]
    assert [c["baseline"] for c in localisation["comparisons"]] == [
        "random-init control",
        "centre point",
        "random-init control",
        "mask area",
    ]
    faithfulness = probe["evidence"]["faithfulness"]["comparisons"][0]
    assert faithfulness["baseline"] == "random pixel order" and faithfulness["baseline_value"]["value"] == 0.0


def test_nulls_without_labels_or_masks():
    m = _metrics(labels=False, masks=False)
    probe = m["backbones"][0]
    assert probe["clustering"]["nmi"] is None and probe["clustering"]["k"] == 2
    agf = probe["attribution"]["agf"]
    assert agf["pointing_game"] is None and agf["mask_energy"] is None and agf["miou"] is None
    assert agf["positive_perturbation_auc"] is not None
    pc = probe["pseudo_classes"][0]
    assert pc["majority_label"] is None and pc["purity"] is None and pc["semantic"] is None
    assert probe["semantic"] is None and probe["evidence"]["faithfulness"]["outcome"] == "passes"
    assert probe["evidence"]["agreement"]["comparisons"] == [] and probe["evidence"]["agreement"]["outcome"] is None
    assert probe["baselines"] == {"centre_pointing_game": None, "mask_fraction": None}


def test_nan_and_inf_become_null():
    results = make_results()
    results.backbones[0].methods["gradcam"].miou = Estimate(float("nan"))
    results.backbones[0].pseudo_classes[0].mask_energy = Estimate(float("inf"))
    m = build_metrics(results)
    assert m["backbones"][0]["attribution"]["gradcam"]["miou"] is None
    assert m["backbones"][0]["pseudo_classes"][0]["mask_energy"] is None


def test_written_file_is_strict_json(tmp_path):
    write_report(tmp_path, make_results())

    def refuse(token):
        raise AssertionError(f"non-JSON constant {token} in metrics.json")

    obj = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    validate_metrics(obj)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m["backbones"][0]["attribution"]["agf"]["miou"].__setitem__("low", float("nan")), "expected number"),
        (lambda m: m["backbones"][0]["attribution"]["agf"].__setitem__("miou", 0.5), "attribution.agf.miou"),
        (lambda m: m["backbones"][0]["attribution"]["agf"]["miou"].pop("high"), "missing keys \\['high'\\]"),
        (lambda m: m["backbones"][0]["clustering"].pop("nmi"), "missing keys \\['nmi'\\]"),
        (lambda m: m["backbones"][0]["evidence"]["agreement"].__setitem__("counted", None), "agreement.counted"),
        (lambda m: m["backbones"][0].__setitem__("colour", "red"), "unexpected keys \\['colour'\\]"),
        (
            lambda m: m["backbones"][0]["pseudo_classes"][1].__setitem__("semantic", "yes"),
            "pseudo_classes\\[1\\].semantic",
        ),
        (lambda m: m["backbones"][0]["clustering"].__setitem__("k", True), "clustering.k"),
        (lambda m: m.__setitem__("backbones", {}), "expected an array"),
    ],
)
def test_validator_names_the_first_problem(mutate, message):
    m = copy.deepcopy(_metrics())
    mutate(m)
    with pytest.raises(ProbeValueError, match=message):
        validate_metrics(m)


def test_results_are_checked_before_writing(tmp_path):
    results = make_results()
    results.backbones[1].name = results.backbones[0].name
    with pytest.raises(ProbeValueError, match="unique"):
        write_report(tmp_path, results)
    results = make_results()
    del results.backbones[1].methods["agf"]
    with pytest.raises(ProbeValueError, match="primary method 'agf'"):
        write_report(tmp_path, results)
    results = make_results()
    results.backbones[0].control = "nope"
    with pytest.raises(ProbeValueError, match="no backbone named 'nope'"):
        write_report(tmp_path, results)
    results = make_results()
    del results.verdicts[results.backbones[0].name]  # the report renders verdicts, it never judges
    with pytest.raises(ProbeValueError, match="has no verdicts"):
        write_report(tmp_path, results)
    results = make_results()
    results.verdicts[results.backbones[0].name].pseudo_classes.pop()
    with pytest.raises(ProbeValueError, match="has no verdicts"):
        write_report(tmp_path, results)
    assert not (tmp_path / "report.html").exists()


def test_the_report_shows_the_stored_verdicts():
    results = make_results()
    stored = results.verdicts[results.backbones[0].name]
    results.verdicts[results.backbones[0].name] = replace(
        stored, backbone=replace(stored.backbone, semantic=False, statement="judged elsewhere")
    )
    probe = build_metrics(results)["backbones"][0]
    assert probe["semantic"] is False and probe["verdict"] == "judged elsewhere"
