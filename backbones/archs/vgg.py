"""torchvision VGGs (with and without BatchNorm) as backbones: the penultimate classifier layer, 4096-d.

A VGG's convolutional features pass through two trained 4096-wide fully connected layers before the
1000-way output. The features are taken after the second of them (``classifier[:-1]``: Linear, ReLU,
Dropout, Linear, ReLU, Dropout; dropout is off in eval mode), for two reasons: it keeps every trained
weight but the output layer, and it is the feature transfer learning reads from a VGG; and a linear head on
it rebuilds the network the AGF paper explains (a VGG-16 with its classifier), so explanations of probe
pseudo-classes are made on that same network. Pooled convolutional features (512-d) would discard the two
trained layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch.nn as nn
import torchvision.models as tvm

from ..registry import Detection, register

# Convolutions per torchvision configuration.
_CONVS = {"vgg11": 8, "vgg13": 10, "vgg16": 13, "vgg19": 16}


def _fits(convs: int, batch_norm: bool) -> Callable[[Mapping[str, tuple]], dict | None]:
    """``infer_kwargs``: {} when the ``features.*`` convolutions and BatchNorms are this configuration's."""

    def infer(shapes: Mapping[str, tuple]) -> dict | None:
        weights = [k for k, s in shapes.items() if k.startswith("features.") and k.endswith(".weight") and len(s) == 4]
        has_bn = any(k.startswith("features.") and k.endswith(".running_mean") for k in shapes)
        return {} if (len(weights), has_bn) == (convs, batch_norm) else None

    return infer


def _vgg(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = getattr(tvm, name)(weights=None)
        model.classifier = nn.Sequential(*list(model.classifier)[:-1])  # keeps keys classifier.0 / classifier.3
        return model

    build.__doc__ = f"torchvision {name}, features from the penultimate classifier layer (4096-d)."
    return build


for _name, _convs in _CONVS.items():
    for _bn in (False, True):
        _full = f"{_name}_bn" if _bn else _name
        register(
            _full,
            family="vgg",
            detection=Detection(infer_kwargs=_fits(_convs, _bn)),
            description=f"torchvision {_full}{' (BatchNorm)' if _bn else ''}, penultimate classifier layer, 4096-d",
        )(_vgg(_full))
