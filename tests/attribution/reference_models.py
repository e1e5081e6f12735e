"""Rebuild the seeded models of the AGF reference fixture (tests/data/agf_reference.npz, recipe in its README)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torchvision


def seeded_state_dict(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every state-dict tensor, in order, drawn from one ``numpy.random.default_rng(seed)`` stream."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros_like(tensor)
            continue
        z = rng.standard_normal(shape)
        owner = model.get_submodule(key.rsplit(".", 1)[0])
        leaf = key.rsplit(".", 1)[1]
        if leaf == "running_var":
            v = 1 + 0.1 * np.abs(z)
        elif leaf == "running_mean":
            v = 0.1 * z
        elif len(shape) == 4:
            v = z * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif len(shape) == 2:
            v = z * math.sqrt(1.0 / shape[1])
        elif leaf == "bias" and isinstance(owner, nn.Linear):
            v = 0.01 * z
        elif leaf == "weight":
            v = 1 + 0.1 * z
        else:
            v = 0.1 * z
        out[key] = torch.from_numpy(v.astype(np.float32))
    return out


def reference_model(arch: str) -> nn.Module:
    """torchvision ``arch`` with 10 classes and the fixture's seeded weights, in eval mode."""
    model = getattr(torchvision.models, arch)(num_classes=10)
    model.load_state_dict(seeded_state_dict(model))
    return model.eval()
