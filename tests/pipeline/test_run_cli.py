"""`probe run` end to end through the CLI on the tiny world: outputs, schema, determinism, reuse."""

from __future__ import annotations

import json

import pytest
import torch

from probe.pipeline import load_probe_model
from probe.report import validate_metrics
from tests.support.shapes import run_args
from unsupervised import PseudoClasses

pytestmark = pytest.mark.slow


def _metrics(out) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_run_writes_a_valid_report_with_probe_and_control(run_dir):
    out, done = run_dir
    assert (out / "report.html").is_file() and (out / "figures").is_dir()
    metrics = _metrics(out)
    validate_metrics(metrics)
    probe, control = metrics["backbones"]
    assert (probe["name"], probe["role"], probe["control"]) == ("moco_v2", "probe", "random-init control")
    assert (control["role"], control["format"], control["control"]) == ("control", "random-init", None)
    assert probe["format"] == "moco" and probe["arch"] == "resnet_small"
    assert metrics["dataset"]["images"] == 54 and [b["method"] for b in metrics["backbones"]] == ["agf", "agf"]
    assert set(probe["attribution"]) == {"agf", "gradcam"}
    for b in (probe, control):
        assert b["clustering"]["k"] == 3 and b["clustering"]["nmi"] is not None  # the folder has labels
        assert len(b["pseudo_classes"]) == 3 and sum(pc["size"] for pc in b["pseudo_classes"]) == 54
        assert b["baselines"]["mask_fraction"] is not None  # masks were given
        for figures in b["attribution"].values():
            assert figures["mask_energy"] is not None and figures["positive_perturbation_auc"] is not None
            assert figures["specificity"] is not None and figures["specificity"]["images"] >= 1
    assert probe["attribution"]["agf"]["sanity"] is not None and probe["attribution"]["gradcam"]["sanity"] is None
    assert control["attribution"]["agf"]["sanity"] is None
    assert "timings" not in metrics  # wall-clock seconds live in timings.json, so metrics.json is reproducible
    timings = json.loads((out / "timings.json").read_text())["seconds"]
    assert list(timings) == ["extract", "cluster", "head", "explain", "evaluate", "report"]
    assert "moco_v2" in done.stdout and "random-init control" in done.stdout and "report:" in done.stdout
    log = (out / "run.log").read_text()
    for stage in ("extract", "cluster", "head", "explain", "evaluate", "report"):
        assert f"{stage} " in log and "done in" in log
    html = (out / "report.html").read_text()
    assert "figures/b0_class0.png" in html  # pseudo-class cards with members


def test_same_seed_gives_the_same_metrics(run_dir, world, checkpoints, tmp_path, run_cli):
    first, _ = run_dir
    done = run_cli(*run_args(checkpoints["moco_v2"], world, tmp_path / "again"))
    assert done.returncode == 0, done.stderr
    assert (first / "metrics.json").read_bytes() == (tmp_path / "again" / "metrics.json").read_bytes()


def test_run_folder_gives_back_the_pseudo_class_model(run_dir, checkpoints):
    out, _ = run_dir
    saved = load_probe_model(out, device="cpu")
    model = saved.model
    assert saved.num_classes == 3
    assert saved.normalization.mean == (0.485, 0.456, 0.406) and saved.normalization.std is not None
    assert saved.backbone is model.backbone and not model.training
    state = PseudoClasses.load(out / "backbones" / "moco_v2" / "pseudo_classes.pt")
    assert state.backbone["sha256"] == model.backbone.source.sha256
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), state.probe_model(model.backbone)(x))
    control = load_probe_model(out / "backbones" / "random-init_control", device="cpu").model
    assert control.backbone.format == "random-init"
    with torch.no_grad():
        assert not torch.allclose(control(x), model(x))
