"""Seeded reference models and helpers to write checkpoints in each family's layout."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def randomize_norms(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial affine parameters and running statistics (so unloaded buffers show)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return model


def seeded(build, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_norms(build(), seed).eval()


def headless(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


def torchvision_resnet(name: str, seed: int, *, classes: int | None = None) -> nn.Module:
    """A seeded torchvision ResNet; with ``classes`` it keeps an fc of that size, else fc is Identity."""
    model = seeded(lambda: getattr(torchvision.models, name)(num_classes=classes or 1000), seed)
    return model if classes else headless(model)


def vit_small(heads: int, seed: int, img_size: int = 32) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(
        img_size=img_size, patch_size=16, embed_dim=384, depth=12, num_heads=heads, num_classes=0, global_pool="token"
    ).eval()


def state(model: nn.Module, prefix: str = "", *, drop_bn_counters: bool = False) -> dict[str, torch.Tensor]:
    """The model's state dict with ``prefix`` added, as independent tensors."""
    return {
        prefix + k: v.clone()
        for k, v in model.state_dict().items()
        if not (drop_bn_counters and k.endswith("num_batches_tracked"))
    }


def shared(sd: dict[str, torch.Tensor], old: str, new: str) -> dict[str, torch.Tensor]:
    """Copies of keys under another prefix that share storage (a momentum encoder without doubling the file)."""
    return {k.replace(old, new, 1): v for k, v in sd.items() if k.startswith(old)}


def zeros_like_keys(sd: dict[str, torch.Tensor], old: str, new: str) -> dict[str, torch.Tensor]:
    """All-zero tensors of the same shapes under another prefix, stored as one element each."""
    return {
        k.replace(old, new, 1): torch.zeros((), dtype=v.dtype).expand(v.shape)
        for k, v in sd.items()
        if k.startswith(old)
    }


def mlp_head(prefix: str, dims: list[int], *, bn: bool, seed: int) -> dict[str, torch.Tensor]:
    """Keys of an MLP projector ``Linear(, BN1d), ReLU, ...`` laid out as in nn.Sequential indices."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm1d(b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    torch.manual_seed(seed)
    return state(nn.Sequential(*layers), prefix)


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def assert_same_features(backbone: nn.Module, reference: nn.Module, size: int, seed: int = 0) -> None:
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(seed))
    got, want = features(backbone, x), features(reference, x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path
