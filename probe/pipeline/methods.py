"""Which attribution methods explain a backbone: the run's given ones checked, the rest settled from the
defaults of the backbone's kind (:data:`~probe.pipeline.options.DEFAULT_METHODS`), all before any heavy work.

The attribution package answers (``probe.attribution.supports``, structural checks only): a method
explains a backbone when it can explain the backbone followed by a Linear head, as the pipeline builds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch.nn as nn

import backbones
from probe.errors import ParameterError

from .options import DEFAULT_METHODS, MethodDefaults, ProbeOptions

log = logging.getLogger("probe.pipeline")


def with_head(backbone: backbones.Backbone, k: int) -> nn.Module:
    """The classifier the pipeline explains, with a head on the meta device: only its structure is asked
    about (no weights drawn, no random state used)."""
    return nn.Sequential(backbone, nn.Linear(backbone.feature_dim, k, device="meta"))


def defaults_for(model: nn.Module, defaults: Sequence[MethodDefaults] = DEFAULT_METHODS) -> MethodDefaults | None:
    """The first of ``defaults`` whose primary method explains ``model`` (a classifier), or None."""
    from probe.attribution import supports

    return next((d for d in defaults if supports(model, d.method)), None)


def arch_defaults(
    arch: str, arch_kwargs: Mapping[str, Any] | None = None, defaults: Sequence[MethodDefaults] = DEFAULT_METHODS
) -> MethodDefaults | None:
    """The default methods of architecture ``arch``, asked of a weightless build on the meta device
    (what ``probe backbones`` shows); None when no default explains it."""
    import torch

    kwargs = dict(arch_kwargs or {})
    spec = backbones.get_arch(arch)
    size = kwargs.get("img_size", spec.input_size)
    with torch.device("meta"), torch.no_grad():
        model = spec.create(**kwargs).eval()
        feature_dim = int(model(torch.empty(1, 3, size, size)).shape[-1])
        return defaults_for(nn.Sequential(model, nn.Linear(feature_dim, 2)), defaults)


def settle_methods(options: ProbeOptions, backbone: backbones.Backbone, name: str) -> ProbeOptions:
    """``options`` with the method and baselines for ``backbone`` (called ``name``): the given ones, each
    checked; the others from the defaults of the backbone's kind. A given method that cannot explain the
    backbone is a :class:`ParameterError` naming it, the backbone, and the method that would."""
    from probe.attribution import supports

    model = with_head(backbone, options.k)
    defaults = defaults_for(model, options.method_defaults)
    suggestion = (
        f"; the default for {defaults.models} works: --method {defaults.method} "
        f"--baselines {','.join(defaults.baselines)}"
        if defaults is not None
        else ""
    )
    what = f"{name} (architecture {backbone.arch})"
    if options.method is not None:
        answer = supports(model, options.method)
        if not answer:
            raise ParameterError("method", f"{options.method} cannot explain {what}: {answer.reason}{suggestion}")
    if options.baselines is not None:
        for baseline in options.baselines:
            answer = supports(model, baseline)
            if not answer:
                raise ParameterError("baselines", f"{baseline} cannot explain {what}: {answer.reason}{suggestion}")
    if options.settled:
        return options
    if defaults is None:
        kinds = ", ".join(d.method for d in options.method_defaults)
        raise ParameterError(
            "method", f"none of the default methods ({kinds}) can explain {what}; choose one with --method"
        )
    method = options.method if options.method is not None else defaults.method
    baselines = options.baselines
    if baselines is None:
        baselines = tuple(b for b in defaults.baselines if supports(model, b))
        for dropped in sorted(set(defaults.baselines) - set(baselines)):
            log.info("%s: default baseline %s left out: it cannot explain %s", name, dropped, backbone.arch)
    used = (method, *baselines)
    method_options = {m: o for m, o in options.method_options.items() if m in used}
    return replace(options, method=method, baselines=baselines, method_options=method_options)
