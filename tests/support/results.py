"""Synthetic run results for the report tests, with hostile user strings in every name."""

from __future__ import annotations

import itertools

import numpy as np

from probe.evaluation.intervals import RESAMPLES, Estimate, estimate
from probe.pipeline.evaluate import curve
from probe.pipeline.verdicts import judge_run
from probe.report import (
    BackboneResults,
    Clustering,
    MapRow,
    Member,
    MethodResults,
    PseudoClass,
    RunResults,
    SanityCurve,
    SideBySide,
    SkippedImage,
    SpecificityExample,
    SpecificitySummary,
)

HOSTILE_BACKBONE = "my <b>model</b> & co"
HOSTILE_LABEL = "<script>alert(1)</script>"
HOSTILE_FILE = "ünïcode dir/<img src=x onerror=alert(2)>.png"
HOSTILE_SKIP = "broken 'file\" <i>.jpg"
STEPS = [i / 10 for i in range(10)]


def _image(seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((size, size, 3)).astype(np.float32)


def _map(seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    return (rng.random((size, size)) - 0.3).astype(np.float32)


class Estimates:
    """Figures with seeded replicates (each figure its own draws: independent of the others)."""

    def __init__(self) -> None:
        self._seeds = itertools.count()

    def __call__(self, value: float | None, spread: float = 0.03) -> Estimate | None:
        if value is None:
            return None
        rng = np.random.default_rng(next(self._seeds))
        return estimate(value, value + spread * rng.standard_normal(RESAMPLES))


def _method(e: Estimates, shift: float, sanity: bool = True) -> MethodResults:
    pos = [1.0] + [max(0.0, 0.8 - shift - 0.1 * i) for i in range(9)]
    neg = [1.0] + [min(1.0, 0.9 + shift - 0.02 * i) for i in range(9)]
    return MethodResults(
        positive_perturbation_auc=e(0.3 - shift),
        negative_perturbation_auc=e(0.8 + shift / 2),
        positive_curve=curve(STEPS, [e(y) for y in pos]),
        negative_curve=curve(STEPS, [e(y) for y in neg]),
        pointing_game=e(0.7 + shift),
        mask_energy=e(0.6 + shift),
        miou=e(0.5),
        pixel_accuracy=e(0.7),
        average_precision=e(0.65),
        sanity=SanityCurve(["original", "head", "layer4", "layer3 … conv1"], [e(v) for v in (1.0, 0.6, 0.3, 0.1)])
        if sanity
        else None,
        specificity=SpecificitySummary(e(0.8), e(0.2), e(0.1), e(0.12), 4),
        undefined={"pointing_game": 1, "mask_energy": 0} if shift > 0 else {"pointing_game": 0, "mask_energy": 0},
    )


def make_results(
    *, labels: bool = True, masks: bool = True, control_maps: bool = True, side_by_side: bool = False
) -> RunResults:
    """A probe backbone with its control, two pseudo-classes, a specificity example, skipped images; with
    ``side_by_side``, two images explained side by side (one row: the probe)."""
    e = Estimates()
    members = [
        Member(
            name=HOSTILE_FILE if i == 0 else f"img {i}.png",
            image=_image(i),
            map=_map(i),
            label=HOSTILE_LABEL if labels else None,
            control_map=_map(i + 50) if control_maps else None,
        )
        for i in range(3)
    ]
    classes = [
        PseudoClass(
            id=c,
            size=40 + c,
            majority_label=(HOSTILE_LABEL if c == 0 else "dog") if labels else None,
            purity=e(0.9 - 0.3 * c) if labels else None,
            pointing_game=e(0.8) if masks else None,
            mask_energy=e(0.7) if masks else None,
            centre_pointing_game=e(0.4) if masks else None,
            mask_fraction=e(0.25, 0.01) if masks else None,
            positive_perturbation_auc=e(0.2),
            negative_perturbation_auc=e(0.8),
            members=members,
        )
        for c in range(2)
    ]

    def strip(m: MethodResults) -> MethodResults:
        if not masks:
            m.pointing_game = m.mask_energy = m.miou = m.pixel_accuracy = m.average_precision = None
            m.specificity = None
            m.undefined = {}
        return m

    probe = BackboneResults(
        name=HOSTILE_BACKBONE,
        role="probe",
        format="torchvision",
        arch="resnet18",
        clustering=Clustering(
            k=2,
            nmi=e(0.6) if labels else None,
            ari=e(0.5) if labels else None,
            accuracy=e(0.8) if labels else None,
            purity=e(0.8) if labels else None,
        ),
        methods={
            "agf": strip(_method(e, 0.1)),
            "gradcam": strip(_method(e, 0.0)),
            "integrated_gradients": strip(_method(e, -0.05)),
        },
        pseudo_classes=classes,
        control="random-init control",
        centre_pointing_game=e(0.4) if masks else None,
        mask_fraction=e(0.25, 0.01) if masks else None,
        specificity_examples=[
            SpecificityExample(
                name=HOSTILE_FILE,
                image=_image(9, 48),
                labels=(HOSTILE_LABEL, "cat & dog"),
                classes=(0, 1),
                maps=(_map(9, 48), _map(10, 48)),
                pearson=0.12,
            )
        ]
        if masks
        else [],
    )
    control = BackboneResults(
        name="random-init control",
        role="control",
        format="torchvision",
        arch="resnet18",
        clustering=Clustering(
            k=2,
            nmi=e(0.05) if labels else None,
            ari=e(0.01) if labels else None,
            accuracy=e(0.5) if labels else None,
            purity=e(0.5) if labels else None,
        ),
        methods={"agf": strip(_method(e, -0.2, sanity=False))},
        pseudo_classes=[PseudoClass(id=c, size=41, purity=e(0.5) if labels else None) for c in range(2)],
        centre_pointing_game=e(0.4) if masks else None,
        mask_fraction=e(0.25, 0.01) if masks else None,
    )
    results = RunResults(
        backbones=[probe, control],
        dataset="my images/ <u>set</u>",
        num_images=83,
        skipped=[SkippedImage(HOSTILE_SKIP, "cannot identify image file <bad>")],
        settings={"k": 2, "seed": 0, "weights": "ckpt <v1>.pth"},
        timings={"extract": 1.5, "explain": 3.25},
    )
    if side_by_side:
        row = MapRow(
            backbone=HOSTILE_BACKBONE,
            method="agf",
            classes=[0, 1],
            images=[_image(20), _image(21)],
            maps=[_map(20), _map(21)],
        )
        results.side_by_side = SideBySide(names=[HOSTILE_FILE, "b.png"], labels=[HOSTILE_LABEL, None], rows=[row])
    results.verdicts = judge_run(results)
    return results
