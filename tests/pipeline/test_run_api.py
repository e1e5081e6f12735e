"""`run_probe` in process: reusing a run folder, failing stages, bad arguments."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import backbones
from probe.cli import main
from probe.pipeline import run_probe
from probe.pipeline.images import with_transform
from unsupervised import ImageFolderData, PseudoClasses, extract_features, kmeans

FAST = dict(baselines=("gradcam",), eval_images=24, device="cpu", batch_size=32)


def _run(checkpoints, world, out, **extra):
    images, masks = world
    return run_probe(checkpoints["moco_v2"], data=images, masks=masks, k=3, out=out, **{**FAST, **extra})


@pytest.mark.slow
def test_rerun_in_the_same_folder_reuses_features_and_pseudo_classes(run_dir, world, checkpoints, tmp_path):
    first, _ = run_dir
    out = tmp_path / "out"
    shutil.copytree(first, out)
    results = _run(checkpoints, world, out)
    assert "cluster" not in results.timings and "head" not in results.timings
    log = (out / "run.log").read_text()
    assert log.count("pseudo-classes reused") == 2 and "loaded from cache" in log
    assert (out / "metrics.json").read_bytes() == (first / "metrics.json").read_bytes()
    stages = set(json.loads((out / "timings.json").read_text())["seconds"])
    assert stages == {"extract", "explain", "evaluate", "report"}


@pytest.mark.slow
def test_a_failing_stage_leaves_no_report_and_keeps_an_earlier_one(run_dir, world, checkpoints, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr("probe.pipeline.evaluate.evaluate_maps", fail)
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="evaluation failed"):
        _run(checkpoints, world, fresh)
    assert not (fresh / "report.html").exists() and not (fresh / "metrics.json").exists()
    assert not (fresh / "figures").exists() and not list(fresh.glob(".report-staging-*"))
    assert "evaluate moco_v2: failed" in (fresh / "run.log").read_text()

    earlier = tmp_path / "earlier"
    shutil.copytree(run_dir[0], earlier)
    page, metrics = (earlier / "report.html").read_bytes(), (earlier / "metrics.json").read_bytes()
    with pytest.raises(RuntimeError):
        _run(checkpoints, world, earlier)
    assert (earlier / "report.html").read_bytes() == page and (earlier / "metrics.json").read_bytes() == metrics


@pytest.mark.slow
def test_a_failing_rerun_that_reclusters_keeps_the_earlier_pseudo_classes(
    run_dir, world, checkpoints, tmp_path, monkeypatch
):
    earlier = tmp_path / "earlier"
    shutil.copytree(run_dir[0], earlier)
    state_files = sorted((earlier / "backbones").glob("*/*"))
    before = {p: p.read_bytes() for p in state_files}

    def fail(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    with monkeypatch.context() as patched:
        patched.setattr("probe.pipeline.evaluate.evaluate_maps", fail)
        with pytest.raises(RuntimeError):
            _run(checkpoints, world, earlier, restarts=2)  # other restarts: new pseudo-classes, then a failure
    assert list((earlier / "backbones").glob("*/*.pending"))  # the new state waited for a report that never came
    assert {p: p.read_bytes() for p in state_files} == before  # the report's own pseudo-classes are untouched
    other = earlier / "backbones" / "other_run" / "pseudo_classes.pt.pending"  # a folder this run does not own
    other.parent.mkdir()
    other.write_bytes(b"left by another run")
    _run(checkpoints, world, earlier)  # a good run with the earlier settings reuses them and drops the leftovers
    assert "pseudo-classes reused" in (earlier / "run.log").read_text()
    assert list((earlier / "backbones").glob("*/*.pending")) == [other]
    assert not (other.parent / "pseudo_classes.pt").exists()
    assert (earlier / "backbones" / "moco_v2" / "pseudo_classes.pt").read_bytes() == before[
        earlier / "backbones" / "moco_v2" / "pseudo_classes.pt"
    ]


def test_bad_arguments_exit_2_with_one_line(world, checkpoints, tmp_path, capsys):
    images, masks = (str(p) for p in world)
    weights = str(checkpoints["moco_v2"])
    base = ["run", "--weights", weights, "--data", images, "--out", str(tmp_path / "out"), "--device", "cpu"]
    cases = [
        (["--k", "500"], "--k 500 is larger than the number of images (54)"),
        (["--k", "3", "--data", str(tmp_path / "missing")], "does not exist"),
        (["--k", "3", "--method", "gradcm"], "unknown attribution method 'gradcm'; valid: agf, gradcam"),
        (["--k", "3", "--baselines", "gradcam,shap"], "--baselines: unknown attribution method 'shap'"),
        (["--k", "3", "--format", "nope"], "moco"),  # unknown format: the valid ones are listed
        (["--k", "3", "--masks", str(tmp_path / "no-masks")], "masks folder"),
        (["--k", "3", "--device", "tpu"], "--device"),
    ]
    for extra, expected in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (extra, err)
    assert not (tmp_path / "out" / "report.html").exists()


@pytest.mark.slow
def test_an_unlabelled_folder_without_masks_gets_nulls_not_errors(world, checkpoints, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted(world[0].glob("*/*.png"))[::3]:
        shutil.copy(image, flat / image.name)
    (flat / "notes.txt").write_text("not an image")
    results = run_probe(
        checkpoints["byol"], data=flat, k=3, out=tmp_path / "out", max_images=15, **{**FAST, "eval_images": 6}
    )
    probe = results.backbone("byol")
    assert results.num_images == 15 and [s.reason for s in results.skipped] == ["not an image file extension (.txt)"]
    assert probe.clustering.nmi is None and probe.pseudo_classes[0].majority_label is None
    assert probe.methods["agf"].mask_energy is None and probe.methods["agf"].specificity is None
    assert probe.methods["agf"].positive_perturbation_auc is not None and probe.methods["agf"].sanity is not None
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["backbones"][0]["semantic"] is None and metrics["dataset"]["skipped"][0]["path"] == "notes.txt"


@pytest.mark.slow
def test_restarts_keep_the_lowest_kmeans_objective_and_are_part_of_reuse(run_dir, world, checkpoints, tmp_path):
    first, _ = run_dir  # made with the default restarts
    out = tmp_path / "out"
    shutil.copytree(first, out)
    _run(checkpoints, world, out, restarts=3)
    assert "not reusing" in (out / "run.log").read_text()  # other restarts: the pseudo-classes are refitted
    state = PseudoClasses.load(out / "backbones" / "moco_v2" / "pseudo_classes.pt")
    assert state.config["nredo"] == 3
    assert not list((out / "backbones").glob("*/*.pending"))  # promoted with the report
    backbone = backbones.load(checkpoints["moco_v2"])
    view = with_transform(ImageFolderData(world[0], masks=world[1]), backbone.preprocess)
    features = extract_features(backbone, view, cache_dir=out / "cache")
    three = kmeans(features, 3, seed=0, nredo=3, spherical=True)
    assert state.objective == pytest.approx(three.objective, rel=1e-6)
    assert np.array_equal(state.labels, three.labels)
    assert three.objective <= kmeans(features, 3, seed=0, nredo=1, spherical=True).objective
