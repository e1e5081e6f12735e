"""What a probe run is asked to do, checked before any heavy work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from probe.errors import ProbeValueError

#: Evaluated images per pseudo-class (a seeded, stratified subset) and the cap over all classes.
EVAL_PER_CLASS = 16
EVAL_IMAGES = 256
#: Most central members shown on each pseudo-class card.
CARD_MEMBERS = 6
#: Images for the cascading-randomisation sanity test, and at most this many two-object images.
SANITY_IMAGES = 4
SPECIFICITY_IMAGES = 16
#: Two-object images shown in the report per backbone.
SPECIFICITY_EXAMPLES = 3
#: k-means runs per clustering, the lowest objective kept: one run can land in a poor local optimum.
KMEANS_RESTARTS = 10
#: Explanations keep every layer's activations: they run in smaller batches than feature extraction.
EXPLAIN_BATCH = 16


@dataclass(frozen=True)
class ProbeOptions:
    """Settings shared by every backbone of a run (see docs/PIPELINE.md for what each one controls)."""

    k: int
    method: str = "agf"
    baselines: tuple[str, ...] = ("gradcam", "integrated_gradients")
    eval_images: int = EVAL_IMAGES
    eval_per_class: int = EVAL_PER_CLASS
    card_members: int = CARD_MEMBERS
    sanity_images: int = SANITY_IMAGES
    specificity_images: int = SPECIFICITY_IMAGES
    batch_size: int = 64
    num_workers: int = 0
    seed: int = 0
    restarts: int = KMEANS_RESTARTS
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: extra keyword options of ``probe.explain`` per method, e.g. ``{"integrated_gradients": {"n_steps": 16}}``
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def methods(self) -> tuple[str, ...]:
        """The primary method first, then the baselines (duplicates dropped)."""
        return tuple(dict.fromkeys((self.method, *self.baselines)))

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
        return max(1, min(self.batch_size, EXPLAIN_BATCH))

    def check(self) -> "ProbeOptions":
        """Raise :class:`ProbeValueError` naming the bad setting (unknown methods list the valid ones)."""
        check_methods(self.method, self.baselines)
        unused = sorted(set(self.method_options) - set(self.methods))
        if unused:
            raise ProbeValueError(f"method_options given for {', '.join(unused)}, which this run does not use")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise ProbeValueError(f"--k must be an integer >= 2, got {self.k!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ProbeValueError(f"--seed must be an integer in 0..2**63-1, got {self.seed!r}")
        for name in ("eval_images", "eval_per_class", "card_members", "batch_size", "restarts"):
            if getattr(self, name) < 1:
                raise ProbeValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sanity_images", "specificity_images", "num_workers"):
            if getattr(self, name) < 0:
                raise ProbeValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        return self


def check_methods(method: str, baselines: Sequence[str] = ()) -> None:
    """Raise :class:`ProbeValueError` for an unknown method name, listing the valid ones."""
    from probe.attribution import METHODS

    for flag, names in (("--method", [method]), ("--baselines", list(baselines))):
        for name in names:
            if name not in METHODS:
                raise ProbeValueError(f"{flag}: unknown attribution method {name!r}; valid: {', '.join(METHODS)}")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else CPU; a clear error for unknown names or absent CUDA."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ProbeValueError(f"--device {device!r}: expected cpu, cuda, cuda:N or auto ({exc})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ProbeValueError(f"--device {device}: CUDA is not available on this machine (use --device cpu or auto)")
    return resolved
