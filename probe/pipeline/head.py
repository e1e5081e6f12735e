"""Stage head: the linear head trained to predict the pseudo-classes, kept with them as ``PseudoClasses``."""

from __future__ import annotations

import backbones
from unsupervised import Features, KMeansResult, PseudoClasses

from .options import ProbeOptions
from .stages import StageClock


def fit_head(
    name: str,
    features: Features,
    clusters: KMeansResult,
    backbone: backbones.Backbone,
    options: ProbeOptions,
    *,
    clock: StageClock,
) -> PseudoClasses:
    """The pseudo-classes of ``clusters`` with their head (L-BFGS on a held-out split), tied to ``backbone``."""
    with clock("head", name):
        return PseudoClasses.from_clusters(features, clusters, backbone=backbone, nredo=options.restarts)
