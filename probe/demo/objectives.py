"""The pretraining objectives of the reference backbones and their native checkpoint layouts.

Each objective wraps a feature extractor (``backbone``: images -> pooled features), computes
its loss from views of a batch, runs its own post-step update (momentum encoders) and
writes the checkpoint object exactly as the method's public release lays it out
(see docs/DEMO_WORLD.md and the checkpoint-format notes):

- SimCLR (tonylins conversion): ``{"state_dict": torchvision keys + fc.*}``, [0, 1] input.
- MoCo v2: ``{"epoch", "arch", "state_dict": module.encoder_q.* (MLP head fc.0/fc.2),
  module.encoder_k.*, module.queue [dim, K], module.queue_ptr}``.
- BYOL (chigur conversion): raw torchvision keys + fc.* (the online classifier), no
  ``num_batches_tracked``.
- supervised: a plain torchvision state dict with its classifier ``fc.*``; a timm ViT as DeiT releases it,
  ``{"model": timm keys + the classifier head.*}``.
- background (a shortcut backbone, a known negative): the same layout, trained on the background's
  pattern kind instead of the categories.

SimCLR, MoCo and BYOL also train an online linear classifier on *detached* features: it only
reports how decodable the category is during training (and is BYOL's and SimCLR's ``fc``);
no label gradient reaches their backbones.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from probe.errors import ProbeTypeError

from .world import BACKGROUNDS

Logs = dict[str, float]


def _mlp(dim_in: int, hidden: int, dim_out: int, batch_norm: bool) -> nn.Sequential:
    """Linear -> [BN] -> ReLU -> Linear; indices 0 and 2 (or 3) hold the weights."""
    mid: list[nn.Module] = [nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
    return nn.Sequential(nn.Linear(dim_in, hidden), *mid, nn.Linear(hidden, dim_out))


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().contiguous().clone() for k, v in state.items()}


def _frozen_copy(module: nn.Module) -> nn.Module:
    """A copy that the optimiser never updates (a momentum/target network)."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(online: list[nn.Module], target: list[nn.Module], momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    tgt: list[torch.Tensor] = [p for m in target for p in m.parameters()]
    src: list[torch.Tensor] = [p for m in online for p in m.parameters()]
    torch._foreach_mul_(tgt, momentum)
    torch._foreach_add_(tgt, src, alpha=1 - momentum)


def feature_dim(backbone: nn.Module) -> int:
    """Width of a backbone's pooled features: ``feature_dim`` on the project's CNNs, ``num_features`` on timm models."""
    width = getattr(backbone, "feature_dim", None) or getattr(backbone, "num_features", None)
    if width is None:
        raise ProbeTypeError(f"{type(backbone).__name__} has neither feature_dim nor num_features")
    return int(width)


def _is_timm_vit(module: nn.Module) -> bool:
    from timm.models.vision_transformer import VisionTransformer  # timm is slow to import

    return isinstance(module, VisionTransformer)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


class Objective(nn.Module):
    """Base: a backbone, an online (detached) category classifier, and the method's loss."""

    name = "base"
    views = 2  # augmented views per image that ``loss`` takes
    normalize = True  # ImageNet mean/std on the input (False: raw [0, 1], as SimCLR's release)
    labels = "labels"  # the array of ``world.render_arrays`` whose values ``loss`` receives as labels

    def __init__(self, backbone: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim(backbone)
        self.classifier = nn.Linear(self.feature_dim, n_classes)

    def probe_loss(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Cross-entropy of the online classifier on features cut from the graph (no gradient to the backbone)."""
        logits = self.classifier(feats.detach())
        return F.cross_entropy(logits, labels), _accuracy(logits, labels)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Post-optimiser update (momentum encoders); ``progress`` runs from 0 to 1 over training."""

    def checkpoint(self, steps: int) -> dict:
        raise NotImplementedError

    def _backbone_with_fc(self) -> dict[str, torch.Tensor]:
        state = _prefixed("", self.backbone.state_dict())
        state.update(_prefixed("fc.", self.classifier.state_dict()))
        return state


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy on ``z`` = [view-1 batch; view-2 batch]."""
    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLR(Objective):
    """SimCLR: NT-Xent between the projections of two views, other images of the batch as negatives."""

    name = "simclr"
    normalize = False

    def __init__(self, backbone: nn.Module, n_classes: int, proj_dim: int = 64, temperature: float = 0.3) -> None:
        super().__init__(backbone, n_classes)
        d = self.feature_dim
        self.projector = _mlp(d, d, proj_dim, batch_norm=False)
        self.temperature = temperature

    def loss(self, views, labels):
        h = self.backbone(torch.cat(views))
        contrastive = nt_xent(self.projector(h), self.temperature)
        probe, acc = self.probe_loss(h, labels.repeat(2))
        return contrastive + probe, {"loss": float(contrastive.detach()), "online_acc": acc}

    def checkpoint(self, steps):
        return {"state_dict": self._backbone_with_fc()}


class MoCoV2(Objective):
    """MoCo v2: query/key encoders with MLP heads, a momentum key encoder and a queue of negatives.

    The loss is symmetrised over the two views. Keys are computed on a shuffled batch in two
    halves, so batch-norm statistics cannot pair a query with its key (MoCo's shuffle-BN).
    """

    name = "moco"
    queue: torch.Tensor  # [dim, queue_size] buffer of negative keys
    queue_ptr: torch.Tensor  # [1] buffer: where the next keys go

    def __init__(
        self,
        backbone: nn.Module,
        n_classes: int,
        dim: int = 64,
        queue_size: int = 4096,
        momentum: float = 0.99,
        temperature: float = 0.2,
        generator: torch.Generator | None = None,
        arch: str = "resnet_small",
    ) -> None:
        super().__init__(backbone, n_classes)
        self.arch = arch  # the architecture name recorded in the checkpoint, as MoCo's script does
        d = self.feature_dim
        self.head_q = _mlp(d, d, dim, batch_norm=False)
        self.backbone_k, self.head_k = _frozen_copy(backbone), _frozen_copy(self.head_q)
        self.momentum = momentum
        self.temperature = temperature
        self.generator = generator or torch.Generator().manual_seed(0)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size, generator=self.generator), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        perm = torch.randperm(x.shape[0], generator=self.generator).to(x.device)
        halves = [self.head_k(self.backbone_k(chunk)) for chunk in x[perm].chunk(2)]
        k = torch.empty_like(torch.cat(halves))
        k[perm] = torch.cat(halves)
        return F.normalize(k, dim=1)

    def _contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone()
        logits = torch.cat([pos, neg], 1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))

    def loss(self, views, labels):
        x1, x2 = views
        h = self.backbone(torch.cat([x1, x2]))
        q1, q2 = F.normalize(self.head_q(h), dim=1).chunk(2)
        with torch.no_grad():
            ema_update([self.backbone, self.head_q], [self.backbone_k, self.head_k], self.momentum)
            k1, k2 = self._keys(x1), self._keys(x2)
        contrastive = (self._contrast(q1, k2) + self._contrast(q2, k1)) / 2
        self._enqueue(k1)
        probe, acc = self.probe_loss(h, labels.repeat(2))
        return contrastive + probe, {"loss": float(contrastive.detach()), "online_acc": acc}

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        size = self.queue.shape[1]
        ptr = int(self.queue_ptr)
        n = keys.shape[0]
        if size % n:
            raise ValueError(f"MoCo queue size {size} must be a multiple of the batch size {n}")
        self.queue[:, ptr : ptr + n] = keys.t()
        self.queue_ptr[0] = (ptr + n) % size

    def checkpoint(self, steps):
        state = {}
        encoders = (
            ("module.encoder_q.", self.backbone, self.head_q),
            ("module.encoder_k.", self.backbone_k, self.head_k),
        )
        for prefix, net, head in encoders:
            state.update(_prefixed(prefix, net.state_dict()))
            state.update(_prefixed(prefix + "fc.", head.state_dict()))
        state["module.queue"] = self.queue.detach().clone()
        state["module.queue_ptr"] = self.queue_ptr.detach().clone()
        return {"epoch": int(steps), "arch": self.arch, "state_dict": state}


class BYOL(Objective):
    """BYOL: an online network predicts the projection of the other view made by an EMA target network."""

    name = "byol"

    def __init__(
        self, backbone: nn.Module, n_classes: int, proj_dim: int = 64, hidden: int = 256, base_momentum: float = 0.99
    ) -> None:
        super().__init__(backbone, n_classes)
        d = self.feature_dim
        self.projector = _mlp(d, hidden, proj_dim, batch_norm=True)
        self.predictor = _mlp(proj_dim, hidden, proj_dim, batch_norm=True)
        self.target_backbone, self.target_projector = _frozen_copy(backbone), _frozen_copy(self.projector)
        self.base_momentum = base_momentum

    def loss(self, views, labels):
        x = torch.cat(views)
        h = self.backbone(x)
        p1, p2 = F.normalize(self.predictor(self.projector(h)), dim=1).chunk(2)
        with torch.no_grad():
            t1, t2 = F.normalize(self.target_projector(self.target_backbone(x)), dim=1).chunk(2)
        regression = (4 - 2 * (p1 * t2).sum(1) - 2 * (p2 * t1).sum(1)).mean()
        probe, acc = self.probe_loss(h, labels.repeat(2))
        return regression + probe, {"loss": float(regression.detach()), "online_acc": acc}

    def after_step(self, progress):
        m = 1 - (1 - self.base_momentum) * (math.cos(math.pi * progress) + 1) / 2
        ema_update([self.backbone, self.projector], [self.target_backbone, self.target_projector], m)

    def checkpoint(self, steps):
        return {k: v for k, v in self._backbone_with_fc().items() if not k.endswith("num_batches_tracked")}


class Supervised(Objective):
    """Positive control: cross-entropy on the image's primary category, through the backbone."""

    name = "supervised"
    views = 1

    def loss(self, views, labels):
        logits = self.classifier(self.backbone(views[0]))
        loss = F.cross_entropy(logits, labels)
        return loss, {"loss": float(loss.detach()), "online_acc": _accuracy(logits, labels)}

    def checkpoint(self, steps):
        if _is_timm_vit(self.backbone):  # DeiT's release layout: the classifier is timm's ``head``
            state = {**_prefixed("", self.backbone.state_dict()), **_prefixed("head.", self.classifier.state_dict())}
            return {"model": state}
        return self._backbone_with_fc()


class BackgroundShortcut(Supervised):
    """A shortcut backbone: cross-entropy on the background's pattern kind, which says nothing about the categories.

    Its features are trained to encode the background only, so the probe must find no semantic evidence in it.
    """

    name = "background"
    labels = "backgrounds"

    def __init__(self, backbone: nn.Module, n_classes: int) -> None:
        super().__init__(backbone, len(BACKGROUNDS))  # ``n_classes`` counts the categories, not the kinds


OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "simclr": SimCLR,
    "moco": MoCoV2,
    "byol": BYOL,
    "supervised": Supervised,
    "background": BackgroundShortcut,
}
