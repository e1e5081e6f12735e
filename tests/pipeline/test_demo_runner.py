"""The demo runner on a tiny world: several shipped-layout checkpoints, one shared control, one report."""

from __future__ import annotations

import json

import pytest

from probe.demo import runner
from probe.errors import ProbeError
from probe.pipeline.options import MethodDefaults
from probe.report import validate_metrics


@pytest.mark.slow
def test_probe_world_compares_every_backbone_with_one_shared_control(world, checkpoints, tmp_path):
    images, masks = world
    chosen = [("simclr", checkpoints["simclr"]), ("byol", checkpoints["byol"])]  # [0, 1] input and ImageNet input
    results = runner.probe_world(
        images,
        masks,
        chosen,
        out=tmp_path,
        device="cpu",
        seed=0,
        positive_controls=["byol"],
        baselines=("gradcam",),
        eval_images=12,
        sanity_images=2,
        specificity_images=4,
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    validate_metrics(metrics)
    assert [(b["name"], b["role"], b["control"]) for b in metrics["backbones"]] == [
        ("simclr", "probe", "random-init control"),
        ("byol", "positive control", "random-init control"),
        ("random-init control", "control", None),
    ]
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


@pytest.mark.slow
def test_a_vit_beside_the_resnets_gets_its_own_control_and_methods_and_changes_nothing_else(
    world, checkpoints, vit_checkpoint, tmp_path
):
    images, masks = world
    cheap = dict(
        device="cpu",
        seed=0,
        eval_images=9,
        sanity_images=2,
        specificity_images=4,
        restarts=2,
        method_defaults=(
            MethodDefaults("CNNs", "agf", ("gradcam",)),
            MethodDefaults("ViTs", "transformer_attribution", ("raw_attention",)),
        ),
    )
    alone = runner.probe_world(images, masks, [("byol", checkpoints["byol"])], out=tmp_path / "alone", **cheap)
    both = runner.probe_world(
        images, masks, [("byol", checkpoints["byol"]), ("vit", vit_checkpoint)], out=tmp_path / "both", **cheap
    )
    metrics = json.loads((tmp_path / "both" / "metrics.json").read_text())
    validate_metrics(metrics)
    vit_control = "random-init control (vit_mini_patch8)"
    assert [
        (b["name"], b["role"], b["arch"], b["method"], b["control"], sorted(b["attribution"]))
        for b in metrics["backbones"]
    ] == [
        ("byol", "probe", "resnet_small", "agf", "random-init control", ["agf", "gradcam"]),
        ("random-init control", "control", "resnet_small", "agf", None, ["agf"]),  # a control: its primary only
        (
            "vit",
            "probe",
            "vit_mini_patch8",
            "transformer_attribution",
            vit_control,
            ["raw_attention", "transformer_attribution"],
        ),
        (vit_control, "control", "vit_mini_patch8", "transformer_attribution", None, ["transformer_attribution"]),
    ]
    assert both.settings["control"] == (
        "random-init control: random init of resnet_small, seed 0; "
        f"{vit_control}: random init of vit_mini_patch8, seed 0"
    )
    assert both.settings["methods"] == (
        "agf, gradcam (resnet_small); transformer_attribution, raw_attention (vit_mini_patch8)"
    )
    page = (tmp_path / "both" / "report.html").read_text()
    assert "explained with <strong>agf</strong>, <strong>transformer_attribution</strong>" in page
    # the same images explained by both, each with its own primary method
    side = both.side_by_side
    assert [(r.backbone, r.method) for r in side.rows] == [("byol", "agf"), ("vit", "transformer_attribution")]
    assert side.labels == ["circle", "square", "triangle"] and all(len(r.maps) == 3 for r in side.rows)
    assert 'id="side-by-side"' in page and (tmp_path / "both" / "figures" / "side_by_side.png").is_file()
    assert alone.side_by_side is None
    # the ResNet part is exactly the run without the ViT
    earlier = json.loads((tmp_path / "alone" / "metrics.json").read_text())["backbones"]
    assert metrics["backbones"][:2] == earlier
    assert [b.name for b in alone.backbones] == ["byol", "random-init control"]
