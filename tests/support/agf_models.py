"""Models for the attribution tests: the fixture's seeded torchvision models and small seeded CNNs."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import backbones


def seeded_state_dict(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every state-dict tensor, in order, drawn from one ``numpy.random.default_rng(seed)`` stream
    (the recipe of tests/data/agf_reference.npz, see /work/shared/fixtures/agf-reference/README.md)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros_like(tensor)
            continue
        z = rng.standard_normal(shape)
        owner_path, leaf = key.rsplit(".", 1)
        if leaf == "running_var":
            v = 1 + 0.1 * np.abs(z)
        elif leaf == "running_mean":
            v = 0.1 * z
        elif len(shape) == 4:
            v = z * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif len(shape) == 2:
            v = z * math.sqrt(1.0 / shape[1])
        elif leaf == "bias" and isinstance(model.get_submodule(owner_path), nn.Linear):
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


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm2d non-trivial running statistics and affine parameters (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(1 + 0.2 * torch.rand(c, generator=gen))
            m.weight.data.copy_(1 + 0.2 * torch.randn(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))
    return model


class TinyVGG(nn.Module):
    """A VGG-shaped CNN (convs with bias, in-place ReLUs, max pools, adaptive pool, flatten, a
    three-layer classifier with dropout) small enough for float64 property tests."""

    def __init__(self, num_classes: int = 5, batchnorm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in (8, "M", 12, 12, "M", 16):
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(channels, width, 3, padding=1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 9, 24),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(24, 24),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(24, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class FunctionalNet(nn.Module):
    """Functional forms the engine supports: F.relu/torch.relu, torch.add, AvgPool2d, x.mean over
    H×W, x.view(x.size(0), -1), F.dropout, and a Linear fed by a flattened 4-D map."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(2)
        self.fc1, self.fc2 = nn.Linear(8, 6), nn.Linear(6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv1(x)))
        x = self.pool(torch.add(x, torch.relu(self.conv2(x))))
        x = x.mean((2, 3), keepdim=True)
        x = F.dropout(x.view(x.size(0), -1), 0.5, self.training)
        return self.fc2(F.relu(self.fc1(x)))


def functional_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(FunctionalNet(), seed).eval()


def tiny_vgg(seed: int = 0, batchnorm: bool = False, num_classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(TinyVGG(num_classes, batchnorm), seed).eval()


def resnet_with_head(seed: int = 0, num_classes: int = 5) -> nn.Module:
    """How pseudo-class models look: a backbone returning pooled features, then a Linear head."""
    torch.manual_seed(seed)
    model = nn.Sequential(backbones.create("resnet_small"), nn.Linear(128, num_classes))
    return randomize_batchnorm(model, seed).eval()


def snapshot(model: nn.Module) -> dict:
    """Everything explain must leave untouched: tensors (bitwise), flags, hooks, gradients."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": [
            (
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._backward_hooks),
                len(getattr(m, "_backward_pre_hooks", {})),
            )
            for m in model.modules()
        ],
        "attributes": [sorted(vars(m)) for m in model.modules()],
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for key, tensor in before["state"].items():
        assert torch.equal(after["state"][key], tensor), f"{key} changed"
        assert after["state"][key].dtype == tensor.dtype
    for key in ("training", "requires_grad", "hooks", "attributes"):
        assert after[key] == before[key], f"{key} changed"
    for a, b in zip(after["grads"], before["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)


def quick_init(builder, seed: int = 0) -> nn.Module:
    """``builder()`` with cheap seeded weights: built on the meta device, then every tensor filled
    by tiling its own random draw of at most 4099 values (prime, so the tiling does not align with
    shapes) at torchvision's scales (convs: sqrt(2 / fan-out), Linear: sqrt(1 / fan-in)), with
    BatchNorm scales around 0.5 so that deep residual stacks do not blow up. Far faster than the
    default init of VGG's 100M-weight classifier; for "it runs" tests."""
    with torch.device("meta"):
        model = builder()
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            period = torch.randn(min(tensor.numel(), 4099), generator=gen)
            if name.endswith("num_batches_tracked"):
                tensor.zero_()
            elif name.endswith("running_var"):
                tensor.fill_(1.0)
            elif tensor.dim() == 4:
                _tile(tensor, period * (2.0 / (tensor.shape[0] * tensor.shape[2] * tensor.shape[3])) ** 0.5)
            elif tensor.dim() == 2:
                _tile(tensor, period * (1.0 / tensor.shape[1]) ** 0.5)
            elif name.endswith("weight"):
                _tile(tensor, 0.5 + 0.1 * period)
            else:
                _tile(tensor, 0.01 * period)
    return model.eval()


def _tile(tensor: torch.Tensor, period: torch.Tensor) -> None:
    flat, p = tensor.view(-1), period.numel()
    whole = flat.numel() // p
    flat[: whole * p].view(whole, p).copy_(period.expand(whole, p))
    flat[whole * p :].copy_(period[: flat.numel() - whole * p])
