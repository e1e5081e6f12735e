"""The demo runner on a tiny world: several shipped-layout checkpoints, one shared control, one report."""

from __future__ import annotations

import json

import pytest

from probe.demo import runner
from probe.errors import ProbeError
from probe.report import validate_metrics


@pytest.mark.slow
def test_probe_world_compares_every_backbone_with_one_shared_control(world, checkpoints, tmp_path):
    images, masks = world
    chosen = [("simclr", checkpoints["simclr"]), ("byol", checkpoints["byol"])]  # [0, 1] input and ImageNet input
    results = runner.probe_world(images, masks, chosen, out=tmp_path, device="cpu", seed=0, positive_controls=["byol"],
                                 baselines=("gradcam",), eval_images=12, sanity_images=2, specificity_images=4)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    validate_metrics(metrics)
    assert [(b["name"], b["role"], b["control"]) for b in metrics["backbones"]] == [
        ("simclr", "probe", "random-init control"), ("byol", "positive control", "random-init control"),
        ("random-init control", "control", None)]
    byol = metrics["backbones"][1]  # a positive control is judged like a probe, and labelled as what it is
    assert byol["evidence"]["agreement"] is not None and "(positive control)" in (tmp_path / "report.html").read_text()
    assert byol["attribution"]["agf"]["sanity"] is not None
    assert [b["format"] for b in metrics["backbones"]] == ["simclr_v1", "byol", "random-init"]
    assert all(b["clustering"]["k"] == 3 for b in metrics["backbones"])  # k = number of categories
    assert (tmp_path / "report.html").is_file()
    # the same run session as `probe run`: run.log, timings.json with the report stage, the common header
    assert "report written to" in (tmp_path / "run.log").read_text()
    assert list(json.loads((tmp_path / "timings.json").read_text())["seconds"])[-1] == "report"
    assert {"world", "backbones", "k", "seed", "methods", "control", "device"} <= set(results.settings)
    assert sorted(p.name for p in (tmp_path / "backbones").iterdir()) == ["byol", "random-init_control", "simclr"]
    assert results.backbone("simclr").pseudo_classes[0].members[0].control_map is not None
    with pytest.raises(ProbeError, match="positive controls \\['nope'\\] are not among the probed backbones"):
        runner.probe_world(images, masks, chosen, out=tmp_path / "other", device="cpu", positive_controls=["nope"])
    assert not (tmp_path / "other" / "cache").exists()  # refused before any work


def test_the_demo_names_its_supervised_backbone_the_positive_control():
    from probe.demo.checkpoints import FILES

    assert runner.POSITIVE_CONTROL in FILES and FILES[runner.POSITIVE_CONTROL][1] == "plain"


def test_missing_shipped_checkpoints_are_named(checkpoints, tmp_path):
    found = [("byol", checkpoints["byol"])]
    assert runner.present(found) == found
    with pytest.raises(ProbeError, match="missing: .*simclr.pth"):
        runner.present([*found, ("simclr", tmp_path / "simclr.pth")])
