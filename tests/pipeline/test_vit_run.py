"""`probe run` on a ViT checkpoint: the ViT methods by default, a random-init ViT as the control, metrics,
verdicts and report; a CNN method is refused by name before any work."""

from __future__ import annotations

import json

from probe.cli import main
from probe.pipeline import run_probe
from probe.report import validate_metrics

VIT_METHODS = {"transformer_attribution", "attention_rollout", "raw_attention"}
CHEAP = dict(eval_images=12, sanity_images=2, specificity_images=4, restarts=2, device="cpu", batch_size=32)


def test_probe_run_on_a_vit_uses_the_vit_methods_and_a_random_init_vit_control(world, vit_checkpoint, tmp_path):
    images, masks = world
    out = tmp_path / "out"
    results = run_probe(vit_checkpoint, data=images, masks=masks, k=3, out=out, **CHEAP)
    metrics = json.loads((out / "metrics.json").read_text())
    validate_metrics(metrics)
    probe, control = metrics["backbones"]
    assert [(b["name"], b["role"], b["format"], b["arch"], b["method"]) for b in (probe, control)] == [
        ("dino_vit", "probe", "dino", "vit_mini_patch8", "transformer_attribution"),
        ("random-init control", "control", "random-init", "vit_mini_patch8", "transformer_attribution"),
    ]
    assert probe["control"] == "random-init control"
    for b in (probe, control):
        # no Grad-CAM, no AGF: they explain CNNs; the control only needs the primary method
        assert set(b["attribution"]) == (VIT_METHODS if b is probe else {"transformer_attribution"})
        assert b["clustering"]["k"] == 3 and len(b["pseudo_classes"]) == 3
        for figures in b["attribution"].values():
            assert figures["mask_energy"] is not None and figures["positive_perturbation_auc"] is not None
    primary = probe["attribution"]["transformer_attribution"]
    assert primary["sanity"] is not None and primary["specificity"] is not None
    assert probe["attribution"]["attention_rollout"]["sanity"] is None  # sanity: the primary method only
    assert probe["verdict"] and all(pc["verdict"] for pc in probe["pseudo_classes"])
    assert probe["evidence"]["faithfulness"] is not None
    assert results.settings["methods"] == "transformer_attribution, attention_rollout, raw_attention"
    assert results.settings["control"] == "random-init control: random init of vit_mini_patch8, seed 0"
    page = (out / "report.html").read_text()
    assert "explained with <strong>transformer_attribution</strong>" in page
    assert (out / "figures" / "b0_class0.png").is_file() or (out / "figures" / "b0_class1.png").is_file()

    # probe explain on the run's ViT: transformer attribution unless another method is named
    image = next((images / "square").glob("*.png"))
    assert (
        main(["explain", "--run", str(out), "--image", str(image), "--out", str(tmp_path / "x.png"), "--device", "cpu"])
        == 0
    )
    assert (tmp_path / "x.png").is_file()
    assert (
        main(
            [
                "explain",
                "--run",
                str(out),
                "--image",
                str(image),
                "--method",
                "raw_attention",
                "--out",
                str(tmp_path / "raw.png"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )


def test_a_cnn_method_is_refused_on_a_vit_before_any_work(world, vit_checkpoint, tmp_path, capsys):
    images, masks = world
    base = ["run", "--weights", str(vit_checkpoint), "--data", str(images), "--k", "3", "--device", "cpu"]
    for extra, problem in (
        (["--method", "agf"], "--method agf cannot explain"),
        (["--baselines", "attention_rollout,gradcam"], "--baselines gradcam cannot explain"),
    ):
        out = tmp_path / extra[1].replace(",", "_")
        assert main([*base, "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert problem in err and "dino_vit (architecture vit_mini_patch8)" in err, err
        assert "works: --method transformer_attribution --baselines attention_rollout,raw_attention" in err, err
        assert not (out / "cache").exists() and "extract" not in (out / "run.log").read_text()
