"""CLIP image towers (OpenAI, open_clip): the ViT as a timm VisionTransformer, the ModifiedResNet as our own module.

Both return CLIP's image embedding, the tower's output that ``encode_image`` gives (projected by
``proj`` for the ViT, by the attention pool's ``c_proj`` for the ResNet). Sizes are read from the
weights; the head count follows the rule both OpenAI's ``build_model`` and open_clip use (head width
64, except open_clip's published ViT-H/g/bigG configs). The ViT's activation is not in the weights:
OpenAI and open_clip's ``-quickgelu`` models use QuickGELU, the other open_clip models GELU, so
the two are separate architectures and a file that does not say which needs ``arch=``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import partial
from typing import Literal

import torch
import torch.nn as nn

from ..preprocessing import CLIP, Preprocessing
from ..registry import Detection, register
from .vit import depth_of, grid_side

CLIP_PREPROCESSING = Preprocessing(input_size=224, normalization=CLIP, crop_pct=1.0, interpolation="bicubic")
# open_clip configs whose head width is not 64 (ViT-H/14: 80, ViT-g/14: 88, ViT-bigG/14: 104), all with 16 heads.
_WIDE_HEADS = {1280: 16, 1408: 16, 1664: 16}


def clip_heads(width: int) -> int:
    """Attention heads of a CLIP ViT of this width."""
    return _WIDE_HEADS.get(width, max(1, width // 64))


def _vit_builder(act: str) -> Callable[..., nn.Module]:
    def build(
        width: int = 768,
        layers: int = 12,
        patch_size: int = 16,
        img_size: int = 224,
        output_dim: int = 512,
        mlp_ratio: float = 4.0,
        layer_scale: bool = False,
    ) -> nn.Module:
        from timm.layers import LayerNorm
        from timm.models.vision_transformer import VisionTransformer

        init: Literal["skip", ""] = "skip" if torch.get_default_device().type == "meta" else ""
        return VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=width,
            depth=layers,
            num_heads=clip_heads(width),
            mlp_ratio=mlp_ratio,
            pre_norm=True,  # ln_pre; timm then builds the patch convolution without bias, as CLIP has it
            norm_layer=partial(LayerNorm, eps=1e-5),
            act_layer=act,
            num_classes=output_dim,  # `proj` (transposed) with a zero bias
            global_pool="token",
            init_values=1.0 if layer_scale else None,
            weight_init=init,
        )

    return build


def clip_vit_kwargs(shapes: Mapping[str, tuple]) -> dict | None:
    """Sizes of a CLIP ViT tower in timm names (as the ``clip`` format writes them); None if not one."""
    proj, pos = shapes.get("patch_embed.proj.weight"), shapes.get("pos_embed")
    fc1 = shapes.get("blocks.0.mlp.fc1.weight")
    if proj is None or pos is None or fc1 is None or "norm_pre.weight" not in shapes:
        return None
    if "patch_embed.proj.bias" in shapes or len(pos) != 3:
        return None
    width, patch = proj[0], proj[-1]
    grid = grid_side(pos[1] - 1)
    if grid is None:
        return None
    found = {
        "width": width,
        "layers": depth_of(shapes),
        "patch_size": patch,
        "img_size": grid * patch,
        "output_dim": shapes["head.weight"][0] if "head.weight" in shapes else 0,
        "mlp_ratio": fc1[0] / width,
        "layer_scale": "blocks.0.ls1.gamma" in shapes,
    }
    if int(width * found["mlp_ratio"]) != fc1[0]:  # timm rounds width * ratio down
        found["mlp_ratio"] = (fc1[0] + 0.5) / width
    return _non_default(found, _vit_builder("gelu"))


def _non_default(found: dict, build: Callable) -> dict:
    defaults = build.__defaults__ or ()
    names = build.__code__.co_varnames[: build.__code__.co_argcount]
    default = dict(zip(names[len(names) - len(defaults) :], defaults))
    return {k: v for k, v in found.items() if default.get(k) != v}


class Bottleneck(nn.Module):
    """CLIP's bottleneck: a 3x3 convolution at stride 1, then average pooling where torchvision would stride."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride > 1 or inplanes != out:
            layers = [("pool", nn.AvgPool2d(stride)), ("0", nn.Conv2d(inplanes, out, 1, bias=False))]
            self.downsample = nn.Sequential(OrderedDict([*layers, ("1", nn.BatchNorm2d(out))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.avgpool(self.relu(self.bn2(self.conv2(y))))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(y + shortcut)


class AttentionPool(nn.Module):
    """One query (the mean token) attends over the mean and every position, each with a learned position embedding."""

    def __init__(self, grid: int, dim: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, dim))
        self.k_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, output_dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + self.positional_embedding
        n, length, dim = tokens.shape
        head_dim = dim // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, -1, self.heads, head_dim).transpose(1, 2)  # [N, heads, tokens, head_dim]

        query = split(self.q_proj(tokens[:, :1]))
        key, value = split(self.k_proj(tokens)), split(self.v_proj(tokens))
        weights = torch.softmax(query @ key.transpose(-2, -1) * head_dim**-0.5, dim=-1)
        pooled = (weights @ value).transpose(1, 2).reshape(n, dim)
        return self.c_proj(pooled)


class ModifiedResNet(nn.Module):
    """CLIP's ResNet: a three-convolution stem with average pooling, anti-aliased strides, attention pooling."""

    # the stages, set by name in __init__
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self, layers: tuple[int, ...] = (3, 4, 6, 3), width: int = 64, img_size: int = 224, output_dim: int = 1024
    ) -> None:
        super().__init__()
        half = width // 2
        self.conv1 = nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.avgpool = nn.AvgPool2d(2)
        inplanes = width
        for index, blocks in enumerate(layers):
            planes = width * 2**index
            stage = [Bottleneck(inplanes, planes, stride=1 if index == 0 else 2)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
        self.attnpool = AttentionPool(img_size // 32, width * 32, width * 32 // 64, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.avgpool(self.relu(self.bn3(self.conv3(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


def clip_resnet_kwargs(shapes: Mapping[str, tuple]) -> dict | None:
    """Block counts, width, input size and output size of a CLIP ModifiedResNet; None if not one."""
    stem, pos, out = (
        shapes.get("conv3.weight"),
        shapes.get("attnpool.positional_embedding"),
        shapes.get("attnpool.c_proj.weight"),
    )
    if stem is None or pos is None or out is None or len(pos) != 2:
        return None
    width = stem[0]
    grid = grid_side(pos[0] - 1)
    if grid is None or pos[1] != width * 32:
        return None
    layers = tuple(
        len({k.split(".")[1] for k in shapes if k.startswith(f"layer{i}.") and k.endswith(".conv1.weight")})
        for i in range(1, 5)
    )
    found = {"layers": layers, "width": width, "img_size": grid * 32, "output_dim": out[0]}
    return _non_default(found, ModifiedResNet.__init__)


for _name, _act, _what in (
    ("clip_vit", "gelu", "CLIP ViT image tower with GELU (open_clip models without -quickgelu)"),
    ("clip_vit_quickgelu", "quick_gelu", "CLIP ViT image tower with QuickGELU (OpenAI, open_clip -quickgelu)"),
):
    register(
        _name,
        family="vit",
        preprocessing=CLIP_PREPROCESSING,
        detection=Detection("auto", clip_vit_kwargs),
        description=f"{_what}; sizes read from the weights, returns the projected image embedding",
    )(_vit_builder(_act))

register(
    "clip_resnet",
    family="clip_resnet",
    preprocessing=CLIP_PREPROCESSING,
    detection=Detection("auto", clip_resnet_kwargs),
    description=(
        "CLIP ModifiedResNet image tower (RN50, RN101, RN50x4...): 3-conv stem, attention pooling; sizes read "
        "from the weights"
    ),
)(ModifiedResNet)
