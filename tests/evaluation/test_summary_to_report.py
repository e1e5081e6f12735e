"""The path the pipeline takes: evaluate_maps -> method_results / PseudoClass rows -> write_report."""

from __future__ import annotations

import json
import math

import pytest
import torch

from backbones.preprocessing import RAW
from probe.evaluation import Resampling, cascading_randomization, evaluate_maps, nanmean
from probe.pipeline.evaluate import evaluated_images, method_results, sanity_curve
from probe.pipeline.verdicts import judge_run
from probe.report import BackboneResults, Clustering, Member, PseudoClass, RunResults, write_report
from probe.report.metrics_json import validate_metrics
from tests.support.models import gradient_of_total, input_x_gradient, small_cnn

K = 3


def _data():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 16, 16, generator=g)
    masks = torch.zeros(6, 16, 16, dtype=torch.bool)
    for i in range(5):  # image 5 has no mask
        masks[i, 2 + i : 9 + i, 3:11] = True
    return images, masks


def test_evaluate_maps_per_image_overall_and_per_class():
    model = small_cnn(classes=K)
    images, masks = _data()
    target = model(images).argmax(dim=1).detach()
    maps = input_x_gradient(model, images, target)
    ev = evaluate_maps(model, images, maps, target, normalization=RAW, masks=masks, batch_size=4)
    assert math.isnan(ev.pointing[5].item()) and math.isnan(ev.centre[5].item())
    assert ev.segmentation.images == 5 and ev.segmentation.pixels == 5 * 16 * 16
    overall = ev.overall()
    assert overall["pointing_game"] == pytest.approx(nanmean(ev.pointing))
    assert overall["positive_perturbation_auc"] == ev.faithfulness.positive.auc
    assert ev.faithfulness.positive.hits[:, 0].all()  # the target is the model's own prediction
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    rows = ev.per_class(classes, K)
    assert len(rows) == K
    assert rows[2]["pointing_game"] == ev.pointing[4].item()  # image 5 (no mask) is left out
    auc = ev.faithfulness.positive.per_image_auc()
    assert rows[0]["positive_perturbation_auc"] == pytest.approx(auc[:2].mean().item())
    same = evaluate_maps(model, images, maps, target, normalization=RAW, masks=masks, batch_size=64)
    assert torch.equal(same.faithfulness.negative.hits, ev.faithfulness.negative.hits)
    assert same.segmentation == ev.segmentation
    no_masks = evaluate_maps(model, images, maps, target, normalization=RAW)
    assert no_masks.overall()["miou"] is None and no_masks.per_class(classes, K)[0]["pointing_game"] is None
    assert no_masks.estimates(Resampling.stratified(6, seed=0))["pointing_game"] is None


def test_estimates_keep_the_figures_and_add_seeded_intervals():
    model = small_cnn(classes=K)
    images, masks = _data()
    target = model(images).argmax(dim=1).detach()
    maps = input_x_gradient(model, images, target)
    ev = evaluate_maps(model, images, maps, target, normalization=RAW, masks=masks, removal="blur")
    resampling = evaluated_images("b", target, seed=0)
    estimates = ev.estimates(resampling)
    for key, value in ev.overall().items():
        assert estimates[key].value == value, key  # the figure itself is unchanged, to the last bit
        assert estimates[key].low <= estimates[key].high, key
    assert estimates == evaluate_maps(
        model, images, maps, target, normalization=RAW, masks=masks, removal="blur"
    ).estimates(evaluated_images("b", target, seed=0))
    assert estimates != ev.estimates(evaluated_images("b", target, seed=1))
    survival = ev.survival_estimates(resampling)["positive"]
    assert [e.value for e in survival] == pytest.approx(ev.faithfulness.positive.survival.tolist())
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    rows = ev.class_estimates(classes, K, resampling)
    assert [r["pointing_game"].value for r in rows] == [r["pointing_game"] for r in ev.per_class(classes, K)]
    assert not any(r["pointing_game"].has_interval for r in rows)  # two images a class: too few for an interval
    five = ev.class_estimates(torch.tensor([0] * 5 + [1]), K, resampling)
    assert five[0]["pointing_game"].has_interval and five[1]["pointing_game"] is None  # image 5: no mask
    assert ev.undefined() == {"pointing_game": 0, "mask_energy": int(torch.isnan(ev.energy[:5]).sum())}


def test_measured_results_make_a_valid_report(tmp_path):
    images, masks = _data()
    backbones = []
    for name, role, seed in (("trained", "probe", 0), ("control", "control", 9)):
        model = small_cnn(seed=seed, classes=K)
        target = model(images).argmax(dim=1).detach()
        methods = {}
        for method, explain in (("agf", input_x_gradient), ("saliency", gradient_of_total)):
            maps = explain(model, images, target)
            ev = evaluate_maps(model, images, maps, target, normalization=RAW, masks=masks)
            resampling = evaluated_images(name, target, seed=0)
            sanity = None
            if role == "probe":
                result = cascading_randomization(model, images[:2], target[:2], explain_fn=explain, max_steps=2)
                sanity = sanity_curve(result, Resampling.stratified(2, seed=0))
            methods[method] = method_results(ev, resampling, sanity=sanity)
            if method == "agf":
                figures, rows = ev.estimates(resampling), ev.class_estimates(target, K, resampling)
                agf_maps = maps
        classes = [
            PseudoClass(
                id=c,
                size=int((target == c).sum()),
                **rows[c],
                members=[
                    Member(f"img{i}.png", images[i].permute(1, 2, 0).numpy(), agf_maps[i].numpy())
                    for i in torch.nonzero(target == c).flatten().tolist()[:2]
                ],
            )
            for c in range(K)
        ]
        backbones.append(
            BackboneResults(
                name=name,
                role=role,
                clustering=Clustering(k=K),
                methods=methods,
                pseudo_classes=classes,
                control="control" if role == "probe" else None,
                centre_pointing_game=figures["centre_pointing_game"],
                mask_fraction=figures["mask_fraction"],
            )
        )
    results = RunResults(backbones=backbones, dataset="synthetic", num_images=6)
    results.verdicts = judge_run(results)
    write_report(tmp_path, results)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    validate_metrics(metrics)
    agf = metrics["backbones"][0]["attribution"]["agf"]
    assert agf["sanity"]["steps"][0] == "original" and len(agf["sanity"]["similarity"]) == 3
    assert agf["miou"] is not None and metrics["backbones"][0]["clustering"]["nmi"] is None
    assert (tmp_path / "figures" / "b0_sanity.png").is_file()
