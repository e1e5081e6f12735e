"""Stage evaluate for one backbone: faithfulness and localisation of every method's maps, the sanity
test of the primary method, class specificity on two-object images, per-pseudo-class figures, each
with its seeded bootstrap interval; then the evaluation package's outputs turned into the report's
:class:`BackboneResults`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from probe.errors import ProbeValueError
from probe.evaluation import (
    FAITHFULNESS_REMOVAL,
    MapEvaluation,
    Resampling,
    SanityResult,
    SpecificityResult,
    TwoObjectPairs,
    cascading_randomization,
    class_specificity,
    evaluate_maps,
    explainer,
    seed_sequence,
    two_object_pairs,
)
from probe.evaluation.intervals import Estimate
from probe.progress import inner_bars_off
from probe.report import (
    BackboneResults,
    Curve,
    Member,
    MethodResults,
    PseudoClass,
    SanityCurve,
    SpecificityExample,
    SpecificitySummary,
)

from .explain import Explained
from .images import MaskReader, load_batch, unnormalise
from .options import SPECIFICITY_EXAMPLES, ProbeOptions
from .prepare import Prepared
from .selection import label_to_class, two_object_rows
from .stages import StageClock, timed

log = logging.getLogger("probe.pipeline")


def _pairs(prep: Prepared, options: ProbeOptions, masks: MaskReader | None) -> tuple[np.ndarray, TwoObjectPairs] | None:
    """Two-object images whose labels map to different pseudo-classes of this backbone, or None."""
    if masks is None or prep.features.labels is None or options.specificity_images == 0:
        return None
    rows = two_object_rows(
        len(prep.rows),
        lambda row: masks.objects(int(prep.rows[row])),
        count=options.specificity_images,
        seed=options.seed,
    )
    if not rows:
        return None
    indices = prep.rows[rows]
    objects = [{label: m for label, m in (masks.by_label(int(i)) or {}).items() if bool(m.any())} for i in indices]
    mapping = label_to_class(prep.features.labels, prep.clusters, prep.features.class_names, prep.pseudo.k)
    try:
        pairs = two_object_pairs(objects, mapping)
    except ProbeValueError as exc:
        log.info("%s: class specificity not measured: %s", prep.name, exc)
        return None
    return indices[pairs.indices], pairs


def _specificity(
    prep: Prepared, options: ProbeOptions, methods: tuple[str, ...], found: tuple[np.ndarray, TwoObjectPairs] | None
) -> tuple[dict[str, SpecificitySummary], list[SpecificityExample]]:
    if found is None:
        return {}, []
    indices, pairs = found
    images = load_batch(prep.data, indices)
    results = {}
    for m in methods:
        with timed(f"{prep.name}: {m} specificity on {len(indices)} two-object images"):
            results[m] = class_specificity(
                prep.model,
                images,
                pairs.targets_a,
                pairs.targets_b,
                pairs.masks_a,
                pairs.masks_b,
                explain_fn=explainer(m, **options.options_of(m)),
                batch_size=options.explain_batch,
                device=options.device,
            )
    primary = results[options.primary]
    shown = unnormalise(images[:SPECIFICITY_EXAMPLES], normalization=prep.backbone.preprocessing.normalization)
    examples = []
    for j in range(min(SPECIFICITY_EXAMPLES, len(indices))):
        pearson = float(primary.pearson[j])
        examples.append(
            SpecificityExample(
                name=prep.data.rel_paths[int(indices[j])],
                image=shown[j],
                labels=pairs.labels[j],
                classes=(int(pairs.targets_a[j]), int(pairs.targets_b[j])),
                maps=(primary.maps_a[j].numpy(), primary.maps_b[j].numpy()),
                pearson=pearson if np.isfinite(pearson) else None,
            )
        )
    resampling = Resampling.stratified(len(indices), seed=seed_sequence(options.seed, prep.name, "two-object images"))
    return {m: specificity_summary(r, resampling) for m, r in results.items()}, examples


def specificity_summary(result: SpecificityResult, resampling: Resampling) -> SpecificitySummary:
    """The report's class-specificity figures with their intervals over the two-object images."""
    return SpecificitySummary(**result.estimates(resampling), images=int(result.pearson.numel()))


def sanity_curve(result: SanityResult, resampling: Resampling) -> SanityCurve:
    """The report's sanity curve: mean similarity per randomisation step, with its interval over the images."""
    return SanityCurve(list(result.steps), result.estimates(resampling))


def _pseudo_classes(
    prep: Prepared,
    evaluation: MapEvaluation,
    target: torch.Tensor,
    members: Sequence[Sequence[Member]],
    resampling: Resampling,
) -> list[PseudoClass]:
    k = prep.pseudo.k
    sizes = np.bincount(prep.clusters, minlength=k)
    figures = evaluation.class_estimates(target, k, resampling)
    return [
        PseudoClass(
            id=c,
            size=int(sizes[c]),
            majority_label=prep.majority_label(c),
            purity=prep.purity(c),
            members=list(members[c]),
            **figures[c],
        )
        for c in range(k)
    ]


def curve(fractions: Sequence[float], values: Sequence[Estimate | None]) -> Curve:
    """A :class:`Curve` of estimates over the removed fractions."""
    return Curve([float(x) for x in fractions], list(values))


def evaluated_images(name: str, target: torch.Tensor, seed: int) -> Resampling:
    """The bootstrap replicates of one backbone's evaluated images, stratified by the pseudo-class explained.

    Every figure of these images uses them, so differences between its methods and its baselines are paired.
    """
    return Resampling.stratified(int(target.numel()), target, seed=seed_sequence(seed, name, "evaluated images"))


def method_results(
    evaluation: MapEvaluation,
    resampling: Resampling,
    *,
    sanity: SanityCurve | None = None,
    specificity: SpecificitySummary | None = None,
) -> MethodResults:
    """A :class:`MethodResults` from :func:`probe.evaluation.evaluate_maps` with intervals on ``resampling``
    (:func:`evaluated_images`), and, if run, the sanity and specificity figures."""
    figures = evaluation.estimates(resampling)
    survival = evaluation.survival_estimates(resampling)
    f = evaluation.faithfulness
    return MethodResults(
        positive_perturbation_auc=figures["positive_perturbation_auc"],
        negative_perturbation_auc=figures["negative_perturbation_auc"],
        positive_curve=curve(f.positive.fractions, survival["positive"]),
        negative_curve=curve(f.negative.fractions, survival["negative"]),
        pointing_game=figures["pointing_game"],
        mask_energy=figures["mask_energy"],
        miou=figures["miou"],
        pixel_accuracy=figures["pixel_accuracy"],
        average_precision=figures["average_precision"],
        sanity=sanity,
        specificity=specificity,
        undefined=evaluation.undefined(),
    )


def evaluate(
    prep: Prepared,
    explained: Explained,
    options: ProbeOptions,
    *,
    methods: tuple[str, ...],
    masks: MaskReader | None,
    control: Prepared | None,
    clock: StageClock,
) -> BackboneResults:
    """Every figure of ``prep`` (a probe, or a control when ``control`` is None) as ``BackboneResults``:
    ``explained`` carries the maps and perturbation curves of ``methods``; localisation, the sanity test
    (probes) and class specificity are measured here."""
    with clock("evaluate", prep.name), inner_bars_off():
        evaluations = {}
        for m in methods:
            with timed(f"{prep.name}: {m} maps evaluated"):
                evaluations[m] = evaluate_maps(
                    prep.model,
                    explained.images,
                    explained.maps[m],
                    explained.target,
                    normalization=prep.backbone.preprocessing.normalization,
                    masks=explained.masks,
                    batch_size=options.batch_size,
                    device=options.device,
                    removal=FAITHFULNESS_REMOVAL,
                    perturbation=explained.faithfulness[m],
                )
        sanity = None
        if prep.role != "control" and options.sanity_images > 0:
            n = options.sanity_images
            primary_fn = explainer(options.primary, **options.options_of(options.primary))
            result = cascading_randomization(
                prep.model,
                explained.images[:n],
                explained.target[:n],
                seed=options.seed,
                explain_fn=primary_fn,
                batch_size=options.explain_batch,
                device=options.device,
            )
            images = int(result.similarity.shape[0])
            sanity = sanity_curve(
                result, Resampling.stratified(images, seed=seed_sequence(options.seed, prep.name, "sanity images"))
            )
        specificity, examples = _specificity(prep, options, methods, _pairs(prep, options, masks))
    resampling = evaluated_images(prep.name, explained.target, options.seed)
    results = {
        m: method_results(
            evaluations[m], resampling, sanity=sanity if m == options.primary else None, specificity=specificity.get(m)
        )
        for m in methods
    }
    overall = evaluations[options.primary].estimates(resampling)
    log.info(
        "%s: evaluated %d images (primary gap known within ±%.3f); %s",
        prep.name,
        len(explained.indices),
        explained.gap_halfwidth,
        ", ".join(f"{m} gap {r.faithfulness_gap}" for m, r in results.items()),
    )
    members = explained.members or [[] for _ in range(prep.pseudo.k)]
    return BackboneResults(
        name=prep.name,
        role=prep.role,
        clustering=prep.clustering(),
        method=options.primary,
        methods=results,
        pseudo_classes=_pseudo_classes(prep, evaluations[options.primary], explained.target, members, resampling),
        format=prep.backbone.format,
        arch=prep.backbone.arch,
        control=control.name if control is not None else None,
        centre_pointing_game=overall["centre_pointing_game"],
        mask_fraction=overall["mask_fraction"],
        specificity_examples=examples,
    )
