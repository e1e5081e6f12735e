"""Seeded bootstrap intervals: every figure of a run as ``value [low, high]``.

A :class:`Resampling` draws the bootstrap replicates once for a set of items (the evaluated
images of one backbone, stratified by pseudo-class; or the clustered images): ``counts[b, i]``
is how often item i is drawn in replicate b. Every figure of those items is then computed on
the same replicates, so the difference of two figures of the same images is a *paired*
difference, and figures of different item sets (drawn from different seeds) are independent.
An :class:`Estimate` keeps its replicates (``draws``), and :func:`difference` subtracts them
replicate by replicate: paired or independent, as the draws were made.

The interval is the percentile interval of the replicates (:data:`LEVEL`, 95 %). Everything is
seeded through :func:`seed_sequence`, so the same seed gives the same bytes. Definitions and
the reasons for this scheme: docs/EVALUATION.md, "Uncertainty".
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from probe.errors import ProbeValueError

#: Coverage of every interval.
LEVEL = 0.95
#: Bootstrap replicates per figure.
RESAMPLES = 2000
#: An interval needs at least this many values; with fewer, ``low`` and ``high`` are None.
MIN_VALUES = 2
#: A pseudo-class's interval needs at least this many images: resampling three images that all hit
#: gives [1.00, 1.00], a precision that three images do not have.
MIN_CLASS_VALUES = 5


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95 % interval; ``low``/``high`` are None when too few values allow none.

    ``draws`` (the bootstrap replicates) let :func:`difference` build intervals of differences;
    they are never written to metrics.json and take no part in equality.
    """

    value: float
    low: float | None = None
    high: float | None = None
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def interval(self) -> tuple[float, float] | None:
        """(low, high), or None without an interval."""
        if self.low is None or self.high is None:
            return None
        return self.low, self.high

    def format(self, digits: int = 2) -> str:
        """``"0.54 [0.49, 0.59]"`` (``"0.54 [–]"`` without an interval)."""
        if not self.has_interval:
            return f"{self.value:.{digits}f} [–]"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.format()

    def to_json(self) -> dict[str, float | None]:
        return {"value": float(self.value), "low": _float(self.low), "high": _float(self.high)}


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _key(part: str | int) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool) and part >= 0:
        return int(part)
    raise ProbeValueError(f"a resampling seed key must be a string or an integer >= 0, got {part!r}")


def seed_sequence(seed: int, *keys: str | int) -> np.random.SeedSequence:
    """A seed for one family of replicates: the run's ``seed`` and stable keys (names hashed with CRC-32)."""
    return np.random.SeedSequence([_key(seed), *(_key(k) for k in keys)])


def estimate(value: float | None, draws: np.ndarray | None, level: float = LEVEL) -> Estimate | None:
    """``value`` with the percentile interval of ``draws`` (NaN replicates left out); None when ``value`` is.

    No interval (``low = high = None``) when fewer than half the replicates are defined.
    """
    if value is None or not math.isfinite(float(value)):
        return None
    if draws is None:
        return Estimate(float(value))
    draws = np.asarray(draws, dtype=np.float64)
    finite = draws[np.isfinite(draws)]
    if finite.size == 0 or finite.size < draws.size / 2:
        return Estimate(float(value), draws=draws)
    tail = (1 - level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Estimate(float(value), float(low), float(high), draws)


def with_value(value: float | None, e: Estimate | None) -> Estimate | None:
    """``e``'s interval around ``value``: the figure computed exactly as elsewhere (to the last bit), the interval
    from the replicates. None when either is."""
    if value is None or e is None:
        return None
    return Estimate(float(value), e.low, e.high, e.draws)


def difference(a: Estimate | None, b: Estimate | None) -> Estimate | None:
    """``a − b`` with an interval from their replicates, subtracted one by one.

    Paired when ``a`` and ``b`` were computed on the same :class:`Resampling` (same items),
    independent when their resamplings came from different seeds. No interval when either
    side has no replicates.
    """
    if a is None or b is None:
        return None
    value = a.value - b.value
    if a.draws is None or b.draws is None or not (a.has_interval and b.has_interval):
        return Estimate(value)
    if a.draws.shape != b.draws.shape:
        raise ProbeValueError(f"cannot subtract {a.draws.size} replicates from {b.draws.size}")
    return estimate(value, a.draws - b.draws)


def constant(value: float) -> Estimate:
    """A known constant (e.g. the expected gap of a random pixel order, 0): a zero-width interval."""
    return Estimate(float(value), float(value), float(value), np.full(RESAMPLES, float(value)))


def _as_array(values: Sequence[float] | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _draw_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """``[resamples, n]``: how often each of n items is drawn in n draws with replacement, per replicate."""
    picks = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(picks.ravel(), minlength=resamples * n).reshape(resamples, n)


@dataclass(frozen=True)
class Resampling:
    """The bootstrap replicates of ``n`` items: ``counts[b, i]`` draws of item i in replicate b.

    Built by :meth:`stratified`; every statistic of the same items uses the same counts.
    """

    counts: np.ndarray  # [RESAMPLES, n] int
    strata: np.ndarray  # [n] stratum of each item

    @classmethod
    def stratified(
        cls,
        n: int,
        strata: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        *,
        seed: np.random.SeedSequence | int,
        resamples: int = RESAMPLES,
    ) -> Resampling:
        """Resample ``n`` items with replacement within each stratum (each keeps its size); one stratum if None."""
        groups = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(_as_array(strata), dtype=np.int64)
        if groups.shape != (n,):
            raise ProbeValueError(f"{groups.size} strata for {n} items")
        if resamples < 1:
            raise ProbeValueError(f"resamples must be >= 1, got {resamples}")
        rng = np.random.default_rng(seed)
        counts = np.zeros((resamples, n), dtype=np.int64)
        for stratum in np.unique(groups):
            members = np.flatnonzero(groups == stratum)
            counts[:, members] = _draw_counts(rng, members.size, resamples)
        return cls(counts, groups)

    @property
    def size(self) -> int:
        return self.counts.shape[1]

    def subset(self, items: np.ndarray | torch.Tensor) -> Resampling:
        """The replicates of the items selected by the bool mask ``items`` (a whole stratum stays a valid resample)."""
        keep = np.asarray(_as_array(items), dtype=bool)
        return Resampling(self.counts[:, keep], self.strata[keep])

    def sums(self, values: Sequence[float] | np.ndarray | torch.Tensor) -> np.ndarray:
        """Σ of ``values [n]`` in each replicate, ``[RESAMPLES]``."""
        x = _as_array(values)
        if x.size != self.size:
            raise ProbeValueError(f"{x.size} values for a resampling of {self.size} items")
        return self.counts @ x

    def mean(
        self, values: Sequence[float] | np.ndarray | torch.Tensor, *, min_values: int = MIN_VALUES
    ) -> Estimate | None:
        """The mean of ``values [n]`` (NaN = undefined, left out) with its interval; None when none is defined.

        No interval (``low = high = None``) with fewer than ``min_values`` defined values."""
        x = _as_array(values)
        defined = np.isfinite(x)
        if not defined.any():
            return None
        value = float(x[defined].mean())
        if int(defined.sum()) < min_values:
            return Estimate(value)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = self.sums(np.where(defined, x, 0.0)) / self.sums(defined)
        return estimate(value, draws)

    def ratio(
        self,
        numerator: Sequence[float] | np.ndarray | torch.Tensor,
        denominator: Sequence[float] | np.ndarray | torch.Tensor,
    ) -> Estimate | None:
        """Σ numerator / Σ denominator over the items (a rate pooled over images) with its interval."""
        num, den = _as_array(numerator), _as_array(denominator)
        total = float(den.sum())
        if total <= 0:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = self.sums(num) / self.sums(den)
        enough = int((den > 0).sum()) >= MIN_VALUES
        return estimate(float(num.sum()) / total, draws if enough else None)


def replicate_counts(n: int, *, seed: np.random.SeedSequence | int, resamples: int = RESAMPLES) -> Iterator[np.ndarray]:
    """One plain (unstratified) resample of ``n`` items after another, as draw counts ``[n]``.

    The streaming form of :meth:`Resampling.stratified` for many items (the clustered images):
    memory stays O(n). The same seed and ``n`` give the same stream, so two clusterings of the
    same images resampled from the same seed are paired replicate by replicate.
    """
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield _draw_counts(rng, n, 1)[0]


def bootstrap_mean(
    values: Sequence[float] | np.ndarray | torch.Tensor,
    strata: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    *,
    seed: np.random.SeedSequence | int = 0,
    resamples: int = RESAMPLES,
) -> Estimate | None:
    """The mean of ``values`` (NaN left out) with its seeded, stratified bootstrap 95 % interval."""
    x = _as_array(values)
    return Resampling.stratified(x.size, strata, seed=seed, resamples=resamples).mean(x)
