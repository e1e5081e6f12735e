"""The in-memory results of a run, as the pipeline fills them and the report reads them.

Structure (``None`` everywhere means "not measured", e.g. no labels or no masks; every figure is an
:class:`~probe.evaluation.intervals.Estimate`, its value with a 95 % interval)::

    RunResults
    ├── backbones: list[BackboneResults]      one per probed backbone, plus its random-init control
    │   ├── name, role ("probe" | "positive control" | "control"), format, arch, control (name of its control)
    │   ├── method                            its primary method (verdicts and cards use it), its control's too
    │   ├── clustering: Clustering            k, nmi, ari, accuracy, purity
    │   ├── methods: dict[str, MethodResults] primary and baselines: AUCs, curves, localisation, sanity, specificity
    │   ├── centre_pointing_game, mask_fraction   localisation baselines on the evaluated images
    │   ├── pseudo_classes: list[PseudoClass] size, majority label, purity, primary-method figures, members
    │   └── specificity_examples: list[SpecificityExample]
    ├── dataset, num_images, skipped: list[SkippedImage]
    ├── verdicts: dict[str, BackboneVerdicts]   by backbone name, judged once by the pipeline
    ├── side_by_side: SideBySide | None         the same images explained by every probed backbone
    └── settings, timings                       shown in the report header / footer

Images are unnormalised ``[H, W, 3]`` arrays (float in [0, 1] or uint8) and maps are
``[H, W]`` arrays of signed relevance; the pipeline converts the evaluation package's outputs
into these fields (``probe.pipeline.evaluate``) and judges the verdicts
(``probe.pipeline.verdicts``). Every string here may come from the user and is escaped by the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from probe.errors import ProbeValueError
from probe.evaluation.intervals import Estimate, difference
from probe.evaluation.verdict import Verdict

#: "positive control": a probed backbone known to be semantic (the demo's supervised one), judged like a probe.
ROLES = ("probe", "positive control", "control")
#: A figure: its value with a 95 % interval, or None when not measured.
Figure = Estimate | None


@dataclass
class Curve:
    """A curve ``y(x)``: survival per fraction of pixels removed, or similarity per sanity step."""

    x: list[float]
    y: list[Figure]


@dataclass
class SanityCurve:
    """Mean Spearman similarity to the original maps after each cumulative randomisation step."""

    steps: list[str]
    similarity: list[Figure]


@dataclass
class SpecificitySummary:
    """Two-object test means: hit rate on the explained object and on the other one, map correlation."""

    pointing_explained: Figure
    pointing_other: Figure
    pearson: Figure
    spearman: Figure
    images: int


class _PerturbationGap:
    """Mixin for results with ``positive_perturbation_auc`` / ``negative_perturbation_auc`` fields."""

    positive_perturbation_auc: Figure
    negative_perturbation_auc: Figure

    @property
    def faithfulness_gap(self) -> Figure:
        """Negative minus positive perturbation AUC, paired image by image (None if either is missing)."""
        return difference(self.negative_perturbation_auc, self.positive_perturbation_auc)


@dataclass
class MethodResults(_PerturbationGap):
    """Every figure of one attribution method on one backbone."""

    positive_perturbation_auc: Figure = None
    negative_perturbation_auc: Figure = None
    positive_curve: Curve | None = None
    negative_curve: Curve | None = None
    pointing_game: Figure = None
    mask_energy: Figure = None
    miou: Figure = None
    pixel_accuracy: Figure = None
    average_precision: Figure = None
    sanity: SanityCurve | None = None
    specificity: SpecificitySummary | None = None
    #: images with a mask left out of a figure because it is undefined there (constant map, no positive relevance)
    undefined: dict[str, int] = field(default_factory=dict)


@dataclass
class Clustering:
    """Cluster-vs-label agreement (from ``unsupervised.cluster_metrics``); ``None`` without labels."""

    k: int
    nmi: Figure = None
    ari: Figure = None
    accuracy: Figure = None
    purity: Figure = None


@dataclass
class Member:
    """One image shown on a pseudo-class card: the image, the primary method's map, the control's map."""

    name: str
    image: np.ndarray
    map: np.ndarray
    label: str | None = None
    control_map: np.ndarray | None = None


@dataclass
class PseudoClass(_PerturbationGap):
    """One pseudo-class: its size and label agreement, the primary method's figures on its images."""

    id: int
    size: int
    majority_label: str | None = None
    purity: Figure = None
    pointing_game: Figure = None
    mask_energy: Figure = None
    centre_pointing_game: Figure = None
    mask_fraction: Figure = None
    positive_perturbation_auc: Figure = None
    negative_perturbation_auc: Figure = None
    members: list[Member] = field(default_factory=list)


@dataclass
class SpecificityExample:
    """A two-object image with the maps of both objects' pseudo-classes."""

    name: str
    image: np.ndarray
    labels: tuple[str, str]
    classes: tuple[int, int]
    maps: tuple[np.ndarray, np.ndarray]
    pearson: float | None = None


@dataclass
class BackboneResults:
    """Everything measured on one backbone (a probed checkpoint or its random-init control)."""

    name: str
    role: str
    clustering: Clustering
    methods: dict[str, MethodResults]
    pseudo_classes: list[PseudoClass] = field(default_factory=list)
    format: str | None = None
    arch: str | None = None
    control: str | None = None
    centre_pointing_game: Figure = None
    mask_fraction: Figure = None
    specificity_examples: list[SpecificityExample] = field(default_factory=list)
    #: the primary method (AGF on CNNs, transformer attribution on ViTs, unless the run named one)
    method: str = "agf"

    @property
    def judged(self) -> bool:
        """True for a probed backbone (a positive control included); a random-init control is never judged."""
        return self.role != "control"


@dataclass(frozen=True)
class BackboneVerdicts:
    """The verdict of a backbone and of each of its pseudo-classes (same order as ``pseudo_classes``)."""

    backbone: Verdict
    pseudo_classes: list[Verdict]


@dataclass
class MapRow:
    """One probed backbone's primary-method maps of the side-by-side images (each its own top-1 pseudo-class)."""

    backbone: str
    method: str
    classes: list[int]
    images: list[np.ndarray]  # the images as this backbone sees them (its own preprocessing), unnormalised
    maps: list[np.ndarray]


@dataclass
class SideBySide:
    """The same images explained by every probed backbone: image names, folder labels, one row per backbone."""

    names: list[str]
    labels: list[str | None]
    rows: list[MapRow]


@dataclass
class SkippedImage:
    """An input image left out of the run, and why (unreadable, corrupt, too small, ...)."""

    path: str
    reason: str


@dataclass
class RunResults:
    """A whole run: backbones with their controls, the data and what was skipped."""

    backbones: list[BackboneResults]
    dataset: str = ""
    num_images: int = 0
    skipped: list[SkippedImage] = field(default_factory=list)
    settings: dict[str, str | int | float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, BackboneVerdicts] = field(default_factory=dict)
    side_by_side: SideBySide | None = None

    def backbone(self, name: str) -> BackboneResults:
        """The backbone called ``name``."""
        for b in self.backbones:
            if b.name == name:
                return b
        raise ProbeValueError(f"no backbone named {name!r}; have: {', '.join(b.name for b in self.backbones)}")

    def control_of(self, backbone: BackboneResults) -> BackboneResults | None:
        """The random-init control of ``backbone``, or ``None``."""
        return self.backbone(backbone.control) if backbone.control is not None else None

    @property
    def primary_methods(self) -> list[str]:
        """The backbones' primary methods, each once, in the order of the backbones."""
        return list(dict.fromkeys(b.method for b in self.backbones))

    def check(self) -> None:
        """Raise :class:`ProbeValueError` if the structure is inconsistent (names, roles, controls, methods,
        verdicts)."""
        if not self.backbones:
            raise ProbeValueError("results have no backbone")
        names = [b.name for b in self.backbones]
        if len(set(names)) != len(names):
            raise ProbeValueError(f"backbone names must be unique, got {names}")
        for b in self.backbones:
            if b.role not in ROLES:
                raise ProbeValueError(f"backbone {b.name!r}: role must be one of {', '.join(ROLES)}, got {b.role!r}")
            if b.method not in b.methods:
                raise ProbeValueError(f"backbone {b.name!r} has no results for its primary method {b.method!r}")
            control = self.control_of(b)
            if control is not None and control.role != "control":
                raise ProbeValueError(f"backbone {b.name!r}: its control {control.name!r} has role {control.role!r}")
            if control is not None and control.method != b.method:
                raise ProbeValueError(
                    f"backbone {b.name!r} is explained with {b.method} but its control "
                    f"{control.name!r} with {control.method}"
                )
            verdicts = self.verdicts.get(b.name)
            if verdicts is None or len(verdicts.pseudo_classes) != len(b.pseudo_classes):
                raise ProbeValueError(
                    f"backbone {b.name!r} has no verdicts for itself and each pseudo-class "
                    "(probe.pipeline.verdicts.judge_run fills them)"
                )
        if self.side_by_side is not None:
            for row in self.side_by_side.rows:
                n = len(self.side_by_side.names)
                if not self.backbone(row.backbone).judged or not len(row.images) == len(row.maps) == n:
                    raise ProbeValueError(
                        f"side-by-side row {row.backbone!r} must be a probed backbone with {n} images and maps"
                    )
