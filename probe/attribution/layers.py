"""The layer kinds the engine has rules for, as one table.

A row says which modules, functions and tensor methods are that kind, how many tensors it reads,
what it does to signs (for ``Graph.nonnegative_values``), what the trace checks on its module,
and its rule in each family. ``graph.trace`` matches operations against this table, and a
family's composite is its column of ``rules``. Adding a layer kind: a name in :class:`StepKind`
and a row here (the rule itself lives in ``rules/``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import torch
import torch.nn as nn
import torch.nn.functional as F

from probe.errors import ProbeTypeError

from .rules import agf, base, lrp
from .rules.base import RuleFactory


class UnsupportedModelError(ProbeTypeError):
    """The model contains a module or operation that the attribution engine has no rule for."""


class StepKind(str, Enum):
    """What a traced step is; compares equal to its value ("conv", ...)."""

    CONV = "conv"
    BATCHNORM = "batchnorm"
    RELU = "relu"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    ADAPTIVE_AVGPOOL = "adaptive_avgpool"
    MEAN = "mean"  # x.mean((2, 3))
    LINEAR = "linear"
    ADD = "add"
    RESHAPE = "reshape"
    IDENTITY = "identity"
    META = "meta"  # arithmetic on sizes, x.size(0) and the like: carries no relevance

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LayerKind:
    """One row of the table: how the trace recognises a kind, and its rule in each family."""

    kind: StepKind
    modules: tuple[type[nn.Module], ...] = ()  # a subclass counts only if it keeps the base forward
    functions: tuple[Callable, ...] = ()  # torch / functional / operator callables
    methods: tuple[str, ...] = ()  # Tensor methods
    inputs: int = 1  # the tensors it reads (an addition: 2, of the same shape)
    keeps_sign: bool = False  # its output is >= 0 wherever all its inputs are
    nonnegative: bool = False  # its output is >= 0 whatever its input (ReLU)
    check: Callable[[str, nn.Module], None] | None = None  # raises UnsupportedModelError for a bad module
    rules: Mapping[str, RuleFactory] = field(default_factory=dict)  # family -> rule factory


def _check_conv(path: str, module: nn.Module) -> None:
    if not isinstance(module, nn.Conv2d):  # the check is registered for Conv2d only
        raise TypeError(f"_check_conv got {type(module).__name__} at {path!r}")
    if module.padding_mode != "zeros":
        raise UnsupportedModelError(
            f"Conv2d '{path}' uses padding_mode={module.padding_mode!r}; attribution supports zero padding only"
        )
    if module.padding == "same" and any(d * (k - 1) % 2 for d, k in zip(module.dilation, module.kernel_size)):
        raise UnsupportedModelError(
            f"Conv2d '{path}' uses asymmetric padding='same'; attribution needs symmetric padding"
        )


def _check_maxpool(path: str, module: nn.Module) -> None:
    if module.return_indices:
        raise UnsupportedModelError(f"MaxPool2d '{path}' returns indices; attribution needs a plain tensor output")


def _check_batchnorm(path: str, module: nn.Module) -> None:
    if module.running_mean is None or module.running_var is None:
        raise UnsupportedModelError(
            f"BatchNorm2d '{path}' keeps no running statistics, so its output depends on the whole batch; "
            "attribution needs per-image inference semantics"
        )


def _same(factory: RuleFactory) -> dict[str, RuleFactory]:
    return {"agf": factory, "lrp": factory}


LAYERS: tuple[LayerKind, ...] = (
    LayerKind(
        StepKind.CONV, (nn.Conv2d,), check=_check_conv, rules={"agf": agf.conv_by_place, "lrp": lrp.conv_by_place}
    ),
    LayerKind(StepKind.BATCHNORM, (nn.BatchNorm2d,), check=_check_batchnorm, rules=_same(base.BatchNormRule.build)),
    LayerKind(
        StepKind.RELU,
        (nn.ReLU,),
        (F.relu, F.relu_, torch.relu, torch.relu_),
        ("relu", "relu_"),
        nonnegative=True,
        rules={"agf": base.ReluRule.build, "lrp": lrp.PassThroughRule.build},
    ),
    LayerKind(
        StepKind.MAXPOOL, (nn.MaxPool2d,), check=_check_maxpool, keeps_sign=True, rules=_same(base.MaxPoolRule.build)
    ),
    LayerKind(StepKind.AVGPOOL, (nn.AvgPool2d,), keeps_sign=True, rules=_same(base.AvgPoolRule.build)),
    LayerKind(
        StepKind.ADAPTIVE_AVGPOOL,
        (nn.AdaptiveAvgPool2d,),
        (F.adaptive_avg_pool2d,),
        keeps_sign=True,
        rules=_same(base.AdaptiveAvgPoolRule.build),
    ),
    LayerKind(StepKind.MEAN, (), (torch.mean,), ("mean",), keeps_sign=True, rules=_same(base.MeanRule.build)),
    LayerKind(
        StepKind.LINEAR, (nn.Linear,), rules={"agf": agf.AgfLinearRule.build, "lrp": lrp.EpsilonLinearRule.build}
    ),
    LayerKind(
        StepKind.ADD,
        (),
        (operator.add, operator.iadd, torch.add),
        ("add", "add_"),
        inputs=2,
        keeps_sign=True,
        rules=_same(base.AddRule.build),
    ),
    LayerKind(
        StepKind.RESHAPE,
        (nn.Flatten,),
        (torch.flatten, torch.reshape),
        ("flatten", "view", "reshape"),
        keeps_sign=True,
        rules=_same(base.ReshapeRule.build),
    ),
    LayerKind(
        StepKind.IDENTITY,
        (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity),
        (F.dropout,),
        ("contiguous",),
        keeps_sign=True,
        rules=_same(base.Rule.build),
    ),
    LayerKind(
        StepKind.META,
        (),
        (operator.getitem, operator.mul, operator.floordiv, operator.add, operator.sub),
        ("size", "dim"),
        inputs=0,
        rules=_same(base.MetaRule.build),
    ),
)
BY_KIND: dict[StepKind, LayerKind] = {row.kind: row for row in LAYERS}
SUPPORTED_MODULES = ", ".join(sorted({t.__name__ for row in LAYERS for t in row.modules}))


def leaf_kind(module: nn.Module) -> StepKind | None:
    """The kind of a module the engine has a rule for, or ``None``."""
    for row in LAYERS:
        for base_type in row.modules:
            if isinstance(module, base_type) and type(module).forward is base_type.forward:
                return row.kind
    return None
