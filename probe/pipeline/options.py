"""What a probe run is asked to do, checked when it is built, before any heavy work starts.

:class:`ProbeOptions` is the one place where a run's defaults are declared: ``run_probe``,
``probe_world`` and the ``probe run`` / ``probe demo`` commands pass on only what they were given.
This module imports no torch, so the command line can read the defaults for its help cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from probe.errors import ParameterError, ProbeValueError

if TYPE_CHECKING:
    import torch

#: Evaluated images per pseudo-class (a seeded, stratified subset) and the cap over all classes.
EVAL_PER_CLASS = 16
EVAL_IMAGES = 256
#: The evaluated images are explained and perturbed in rounds of this many (the first round too)...
EVAL_ROUND = 32
#: ...until the primary method's faithfulness gap is known within ± this (95% interval); 0: every image.
EVAL_PRECISION = 0.1
#: Most central members shown on each pseudo-class card.
CARD_MEMBERS = 6
#: Images for the cascading-randomisation sanity test, and at most this many two-object images.
SANITY_IMAGES = 4
SPECIFICITY_IMAGES = 16
#: Two-object images shown in the report per backbone.
SPECIFICITY_EXAMPLES = 3
#: Images explained by every probed backbone, shown side by side (runs with several backbones).
SIDE_BY_SIDE_IMAGES = 6
#: k-means runs per clustering, the lowest objective kept: one run can land in a poor local optimum.
KMEANS_RESTARTS = 10
#: Explanations keep every layer's activations: they run in smaller batches than feature extraction.
EXPLAIN_BATCH = 16
#: CUDA when available, else the CPU (see :func:`probe.devices.resolve_device`).
DEVICE = "auto"


@dataclass(frozen=True)
class MethodDefaults:
    """The primary method and baselines of a run on the backbones that ``method`` can explain."""

    models: str  # what they explain, in words ("CNNs")
    method: str
    baselines: tuple[str, ...]


#: The methods of a run (and of ``probe explain``) that names none, by backbone: the first entry whose
#: primary method can explain the backbone with a head (``probe.attribution.supports``, a structural
#: check) gives the method and the baselines that were not given. Integrated gradients is opt-in on CNNs:
#: at Captum's 50 steps one map costs about 100 forward passes, 20x Grad-CAM's cost (docs/BENCHMARKS.md).
DEFAULT_METHODS: tuple[MethodDefaults, ...] = (
    MethodDefaults("CNNs", "agf", ("gradcam",)),
    MethodDefaults("ViTs", "transformer_attribution", ("attention_rollout", "raw_attention")),
    MethodDefaults("other models", "integrated_gradients", ("saliency",)),
)


def describe_defaults(defaults: Sequence[MethodDefaults] = DEFAULT_METHODS) -> str:
    """``"agf with gradcam, integrated_gradients on CNNs; ..."``: the defaults for help texts."""
    return "; ".join(f"{d.method} with {', '.join(d.baselines) or 'no baselines'} on {d.models}" for d in defaults)


@dataclass(frozen=True)
class ProbeOptions:
    """Settings shared by every backbone of a run (see docs/PIPELINE.md for what each one controls).

    Built checked: a bad value raises :class:`~probe.errors.ParameterError` naming the field, and
    ``device`` is resolved to a ``torch.device`` (``"auto"``: CUDA when available). ``method`` and
    ``baselines`` left at ``None`` are settled per backbone from ``method_defaults``
    (:func:`probe.pipeline.methods.settle_methods`); the stages get settled options.
    """

    k: int
    method: str | None = None
    baselines: tuple[str, ...] | None = None
    method_defaults: tuple[MethodDefaults, ...] = DEFAULT_METHODS
    eval_images: int = EVAL_IMAGES
    eval_per_class: int = EVAL_PER_CLASS
    #: half-width of the 95% interval of the primary method's faithfulness gap at which the evaluation
    #: stops adding rounds of images; 0 evaluates the whole subset
    eval_precision: float = EVAL_PRECISION
    card_members: int = CARD_MEMBERS
    sanity_images: int = SANITY_IMAGES
    specificity_images: int = SPECIFICITY_IMAGES
    batch_size: int = 64
    #: images per explanation batch (at most ``batch_size``); on CUDA sized to the GPU's free memory
    #: (:mod:`probe.pipeline.sizing`)
    explain_batch_size: int = EXPLAIN_BATCH
    num_workers: int = 0
    seed: int = 0
    restarts: int = KMEANS_RESTARTS
    device: str | torch.device = DEVICE
    #: extra keyword options of ``probe.explain`` per method, e.g. ``{"integrated_gradients": {"n_steps": 16}}``
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from probe.devices import resolve_device

        if self.baselines is not None:
            object.__setattr__(self, "baselines", tuple(self.baselines))
        object.__setattr__(self, "method_defaults", tuple(self.method_defaults))
        if not self.method_defaults or not all(isinstance(d, MethodDefaults) for d in self.method_defaults):
            raise ParameterError("method_defaults", "must be a non-empty sequence of MethodDefaults")
        check_methods(self.method, self.baselines or ())
        for defaults in self.method_defaults:
            check_methods(defaults.method, defaults.baselines)
        unused = sorted(set(self.method_options) - set(self.possible_methods))
        if unused:
            raise ParameterError("method_options", f"given for {', '.join(unused)}, which this run does not use")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise ParameterError("k", f"must be an integer >= 2, got {self.k!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ParameterError("seed", f"must be an integer in 0..2**63-1, got {self.seed!r}")
        for name in ("eval_images", "eval_per_class", "card_members", "batch_size", "explain_batch_size", "restarts"):
            if getattr(self, name) < 1:
                raise ParameterError(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("sanity_images", "specificity_images", "num_workers"):
            if getattr(self, name) < 0:
                raise ParameterError(name, f"must be >= 0, got {getattr(self, name)}")
        precision = self.eval_precision
        if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0 <= precision < 1:
            raise ParameterError("eval_precision", f"must be a number in [0, 1) (0: every image), got {precision!r}")
        object.__setattr__(self, "device", resolve_device(self.device))

    @property
    def settled(self) -> bool:
        """Whether the method and the baselines are known (given, or settled for a backbone)."""
        return self.method is not None and self.baselines is not None

    @property
    def primary(self) -> str:
        """The primary method; only once settled (the stages read this, never ``method``)."""
        if self.method is None:
            raise ProbeValueError("the run's methods are settled per backbone (probe.pipeline.methods.settle_methods)")
        return self.method

    @property
    def methods(self) -> tuple[str, ...]:
        """The primary method first, then the baselines (duplicates dropped); only once settled."""
        if self.baselines is None:
            raise ProbeValueError("the run's methods are settled per backbone (probe.pipeline.methods.settle_methods)")
        return tuple(dict.fromkeys((self.primary, *self.baselines)))

    @property
    def possible_methods(self) -> tuple[str, ...]:
        """Every method this run may use: the given ones, and the defaults' where some are not given."""
        given = [m for m in (self.method, *(self.baselines or ())) if m is not None]
        if not self.settled:
            given += [m for d in self.method_defaults for m in (d.method, *d.baselines)]
        return tuple(dict.fromkeys(given))

    def describe_methods(self) -> str:
        """``"agf, gradcam, integrated_gradients (n_steps=16)"``: the methods with their extra options."""

        def one(m: str) -> str:
            extra = ", ".join(f"{k}={v}" for k, v in self.options_of(m).items())
            return f"{m} ({extra})" if extra else m

        return ", ".join(one(m) for m in self.methods)

    def options_of(self, method: str) -> dict[str, Any]:
        """The extra ``probe.explain`` keyword options of ``method``."""
        return dict(self.method_options.get(method, {}))

    @property
    def explain_batch(self) -> int:
        return max(1, min(self.batch_size, self.explain_batch_size))

    def methods_of(self, role: str) -> tuple[str, ...]:
        """The methods a backbone of ``role`` is explained with: a control only needs the primary method,
        the only one its figures are compared with (verdicts and report)."""
        return self.methods if role != "control" else (self.primary,)


def check_methods(method: str | None, baselines: Sequence[str] = ()) -> None:
    """Raise :class:`ParameterError` (``method`` or ``baselines``) for an unknown method name, listing the
    valid ones (``method=None``: not given)."""
    from probe.attribution import METHODS

    for parameter, names in (("method", [method] if method is not None else []), ("baselines", list(baselines))):
        for name in names:
            if name not in METHODS:
                raise ParameterError(parameter, f": unknown attribution method {name!r}; valid: {', '.join(METHODS)}")
