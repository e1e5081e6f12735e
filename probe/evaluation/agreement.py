"""Bootstrap replicates of the pseudo-classes' agreement with folder labels (NMI, ARI, accuracy, purity).

Two things vary when a clustering is rerun on other images: the k-means seed and the images.
Each replicate therefore takes one of several clusterings of the same features (the run's own
and those from other seeds, each the best of its restarts), chosen at random, and scores it on
a bootstrap resample of the images. The image resample is seeded apart from the choice of
clustering, so two backbones clustered on the same images and resampled from the same seed
are paired image by image, and their seed choices stay independent (docs/EVALUATION.md,
"Uncertainty").

Scores come from contingency tables ``[cluster, label]`` with resampled counts as weights; they
equal scikit-learn's NMI (arithmetic normalisation) and ARI and ``unsupervised``'s Hungarian
accuracy and purity on the unweighted table.

A resample repeats some images and drops others, and repeated images look more clustered than
they are: near zero, the replicates of NMI lie wholly above the run's own value (a random
clustering of the demo's 1,200 images: 0.006 on all images, replicates around 0.014). The
replicates are therefore shifted by that bias, their mean minus the figure of the run's
clustering on all images, so each interval sits around the figure it qualifies.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from probe.errors import ProbeValueError
from unsupervised.metrics import hungarian_accuracy

from .intervals import RESAMPLES, replicate_counts


@dataclass(frozen=True)
class AgreementDraws:
    """Replicates ``[RESAMPLES]`` of each agreement figure, and of each pseudo-class's purity (the run's clustering)."""

    nmi: np.ndarray
    ari: np.ndarray
    accuracy: np.ndarray
    purity: np.ndarray
    class_purity: np.ndarray  # [RESAMPLES, k], NaN where a pseudo-class drew no image


def _plogp(p: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=axes)


def _pairs(x: np.ndarray) -> np.ndarray:
    return x * (x - 1) / 2


def table_scores(tables: np.ndarray) -> dict[str, np.ndarray]:
    """NMI, ARI, Hungarian accuracy and purity of each contingency table ``[..., clusters, labels]`` (counts)."""
    t = np.asarray(tables, dtype=np.float64)
    if t.ndim < 2:
        raise ProbeValueError(f"contingency tables must be [..., clusters, labels], got shape {t.shape}")
    t = t.reshape(-1, *t.shape[-2:])
    n = t.sum(axis=(1, 2))
    rows, cols = t.sum(axis=2), t.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = t / n[:, None, None]
        outer = (rows / n[:, None])[:, :, None] * (cols / n[:, None])[:, None, :]
        mi = np.clip(np.where(p > 0, p * np.log(np.where(p > 0, p / outer, 1.0)), 0.0).sum(axis=(1, 2)), 0.0, None)
        entropy = (-_plogp(rows / n[:, None], (1,)) - _plogp(cols / n[:, None], (1,))) / 2
        nmi = np.where(mi > 0, mi / entropy, 0.0)
        single = ((rows > 0).sum(axis=1) == 1) & ((cols > 0).sum(axis=1) == 1)
        nmi = np.where(single, 1.0, nmi)  # one cluster and one label: scikit-learn's perfect match
        expected = _pairs(rows).sum(axis=1) * _pairs(cols).sum(axis=1) / _pairs(n)
        top = (_pairs(rows).sum(axis=1) + _pairs(cols).sum(axis=1)) / 2
        ari = np.where(top == expected, 1.0, (_pairs(t).sum(axis=(1, 2)) - expected) / (top - expected))
    accuracy = np.array([hungarian_accuracy(table) for table in t])
    purity = t.max(axis=2).sum(axis=1) / n
    return {"nmi": nmi, "ari": ari, "accuracy": accuracy, "purity": purity}


def agreement_draws(
    clusterings: Sequence[np.ndarray],
    truth: np.ndarray,
    *,
    k: int,
    labels: int,
    images_seed: np.random.SeedSequence | int,
    choice_seed: np.random.SeedSequence | int,
    resamples: int = RESAMPLES,
) -> AgreementDraws:
    """Replicates of the agreement of ``clusterings`` (the run's first, then other seeds') with ``truth``.

    ``clusterings``: cluster ids ``[N]`` in 0..k−1 per seed; ``truth``: label ids ``[N]`` in
    0..labels−1. Replicate b scores a randomly chosen clustering (``choice_seed``) on the b-th
    resample of the images (``images_seed``); each pseudo-class's purity is that of the run's
    clustering on the same resample.
    """
    truth = np.asarray(truth, dtype=np.int64).reshape(-1)
    n = truth.size
    if not clusterings or any(np.asarray(c).shape != (n,) for c in clusterings):
        raise ProbeValueError(f"agreement needs one or more clusterings of the {n} labelled images")
    cells = [np.asarray(c, dtype=np.int64) * labels + truth for c in clusterings]
    picks = np.random.default_rng(choice_seed).integers(0, len(cells), size=resamples)
    size = k * labels
    chosen = np.empty((resamples, k, labels))
    kept = np.empty((resamples, k, labels))
    for b, counts in enumerate(replicate_counts(n, seed=images_seed, resamples=resamples)):
        chosen[b] = np.bincount(cells[picks[b]], weights=counts, minlength=size).reshape(k, labels)
        kept[b] = np.bincount(cells[0], weights=counts, minlength=size).reshape(k, labels)
    scores = table_scores(chosen)
    whole = np.bincount(cells[0], minlength=size).reshape(1, k, labels).astype(np.float64)
    scores = {name: unbiased(draws, float(table_scores(whole)[name][0])) for name, draws in scores.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        class_purity = unbiased(kept.max(axis=2) / kept.sum(axis=2), whole.max(axis=2)[0] / whole.sum(axis=2)[0])
    return AgreementDraws(**scores, class_purity=class_purity)


def unbiased(draws: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    """``draws`` (replicates along axis 0) shifted by the bootstrap's estimate of its own bias: their mean
    (NaN left out) minus ``value``, the figure on all items. Where ``value`` is NaN they are left as they are."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of NaN (a class never drawn) has no mean
        bias = np.nanmean(draws, axis=0) - value
    return draws - np.where(np.isfinite(bias), bias, 0.0)
