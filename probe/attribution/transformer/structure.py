"""Find the timm ``VisionTransformer`` inside a model and the Linear that turns its features into class
scores, and describe how that classifier reads the final tokens (class token or mean of the patches).

Supported: the ViT itself with a Linear head, or a wrapper whose classifier Linear lies outside the
ViT (``ProbeModel(Backbone(vit), Linear)``: the ViT built with ``num_classes=0``, or with a Linear
``head`` of its own that projects the features, as CLIP's image tower does). Whether the classifier
really reads the ViT's output, and the model returns the classifier's output, is checked on the
forward pass (``recording.py``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard

import torch
import torch.nn as nn

from probe.errors import ProbeTypeError, ProbeValueError

from ..graph import UnsupportedModelError

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

POOLS = ("token", "avg")
# VisionTransformer methods whose behaviour the methods rely on; a subclass must keep them.
_VIT_METHODS = ("forward", "forward_features", "forward_head", "pool", "_pos_embed")


@dataclass(frozen=True)
class VitStructure:
    """Where the ViT and its classifier sit in the user's model, and how the classifier reads the tokens."""

    vit: VisionTransformer
    vit_path: str  # "" when the model is the ViT
    linears: tuple[tuple[str, nn.Linear], ...]  # (path, Linear) from the pooled feature to the class scores
    pool: str  # "token": the class token; "avg": the mean of the pooled tokens
    num_prefix: int  # class and register tokens before the patch tokens
    pool_includes_prefix: bool  # "avg" only: whether the mean also covers the prefix tokens

    @property
    def head(self) -> nn.Linear:
        """The classifier: the Linear whose outputs are the class scores."""
        return self.linears[-1][1]

    @property
    def head_path(self) -> str:
        return self.linears[-1][0]

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self.vit.blocks)

    def where(self, local: str) -> str:
        """The path in the user's model of ``local``, a path inside the ViT."""
        return ".".join(p for p in (self.vit_path, local) if p)

    def readout(self, num_tokens: int, like: torch.Tensor) -> torch.Tensor:
        """Weights [num_tokens] with which the classifier's input averages the final tokens."""
        weights = torch.zeros(num_tokens, dtype=like.dtype, device=like.device)
        if self.pool == "token":
            weights[0] = 1
        else:
            first = 0 if self.pool_includes_prefix else self.num_prefix
            weights[first:] = 1.0 / (num_tokens - first)
        return weights

    def check_images(self, images: object) -> None:
        """A clear error for images the ViT cannot take (timm would fail inside its forward)."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ProbeValueError(f"images must be a 4-D tensor [N, C, H, W], got {shape}")
        if not images.dtype.is_floating_point:
            raise ProbeTypeError(f"images must be floating point (normalised as the model expects), got {images.dtype}")
        embed = self.vit.patch_embed
        channels = getattr(getattr(embed, "proj", None), "in_channels", images.shape[1])
        if images.shape[1] != channels:
            raise ProbeValueError(f"images have {images.shape[1]} channels; the ViT expects {channels}")
        size = tuple(images.shape[-2:])
        if not getattr(self.vit, "dynamic_img_size", False) and getattr(embed, "strict_img_size", False):
            if size != tuple(embed.img_size):
                raise ProbeValueError(
                    f"images are {size[0]}x{size[1]} but the ViT {self.vit_path or 'model'!r} was built for "
                    f"{embed.img_size[0]}x{embed.img_size[1]}"
                )

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of the patch grid for an input of ``height`` x ``width`` pixels."""
        embed = self.vit.patch_embed
        if getattr(self.vit, "dynamic_img_size", False):
            rows, cols = embed.dynamic_feat_size((height, width))
        else:
            rows, cols = embed.grid_size
        return int(rows), int(cols)


def vit_paths(model: nn.Module) -> list[str]:
    """Paths of the timm VisionTransformers in ``model`` (none without importing timm: a model that
    holds one was built after timm was imported)."""
    timm_vit = sys.modules.get("timm.models.vision_transformer")
    if timm_vit is None:
        return []
    return [path for path, m in model.named_modules() if isinstance(m, timm_vit.VisionTransformer)]


def locate(model: nn.Module, method: str = "transformer_attribution") -> VitStructure:
    """The one timm VisionTransformer in ``model`` and its classifier; a clear error for anything else
    (naming ``method``, the method that asked)."""
    from timm.models.vision_transformer import VisionTransformer  # timm is slow to import

    found = [(path, m) for path, m in model.named_modules() if isinstance(m, VisionTransformer)]
    if not found:
        raise UnsupportedModelError(
            f"{method} explains timm VisionTransformers; {type(model).__name__} holds none "
            "(for CNNs use agf, lrp or gradcam)"
        )
    if len(found) > 1:
        paths = ", ".join(repr(p) for p, _ in found)
        raise ProbeTypeError(f"transformer attribution explains one ViT; the model holds several: {paths}")
    vit_path, vit = found[0]
    label = repr(vit_path) if vit_path else "the model"
    for name in _VIT_METHODS:
        if getattr(type(vit), name) is not getattr(VisionTransformer, name):
            raise UnsupportedModelError(
                f"{label} ({_type_name(vit)}) overrides VisionTransformer.{name}; "
                "transformer attribution supports timm's VisionTransformer as it is"
            )
    pool = vit.global_pool
    if vit.attn_pool is not None or pool not in POOLS:
        raise UnsupportedModelError(
            f"{label} pools its tokens with global_pool={pool!r}; transformer attribution supports "
            "'token' (the class token) and 'avg' (the mean of the patch tokens)"
        )
    from timm.layers.attention import Attention

    for index, block in enumerate(vit.blocks):
        attn = getattr(block, "attn", None)
        if not isinstance(attn, Attention) or type(attn).forward is not Attention.forward:
            where = ".".join(p for p in (vit_path, f"blocks.{index}.attn") if p)
            raise UnsupportedModelError(
                f"transformer attribution reads attention probabilities from timm's Attention; "
                f"module {where!r} is {_type_name(attn) if attn is not None else 'missing'}"
            )
    return VitStructure(
        vit=vit,
        vit_path=vit_path,
        linears=_linears(model, vit, vit_path),
        pool=pool,
        num_prefix=int(vit.num_prefix_tokens),
        pool_includes_prefix=bool(getattr(vit, "pool_include_prefix", False)),
    )


def _linears(model: nn.Module, vit: VisionTransformer, vit_path: str) -> tuple[tuple[str, nn.Linear], ...]:
    """The ViT's own Linear head, the one Linear outside the ViT that reads the ViT's output, or both."""
    own = ".".join(p for p in (vit_path, "head") if p)
    if not (_is_linear(vit.head) or isinstance(vit.head, nn.Identity)):
        raise UnsupportedModelError(
            f"the ViT's head {own!r} ({_type_name(vit.head)}) is not a Linear; transformer attribution "
            "needs the class scores to come from Linear layers on the ViT's features"
        )
    head = vit.head
    chain: tuple[tuple[str, nn.Linear], ...] = ((own, head),) if _is_linear(head) else ()
    width = chain[0][1].out_features if chain else vit.num_features
    inside = {id(m) for m in vit.modules()}
    outer = [
        (path, m)
        for path, m in model.named_modules()
        if id(m) not in inside and _is_linear(m) and m.in_features == width
    ]
    if len(outer) > 1 or not (outer or chain):
        what = "no Linear" if not outer else "several Linears (" + ", ".join(p for p, _ in outer) + ")"
        raise UnsupportedModelError(
            f"{what} outside the ViT {vit_path or 'model'!r} read(s) its {width} output features; "
            "transformer attribution needs exactly one Linear classifier on them"
        )
    return chain + tuple(outer)


def _is_linear(module: nn.Module) -> TypeGuard[nn.Linear]:
    return isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward


def _type_name(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"
