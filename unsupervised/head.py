"""The pseudo-class head: a linear classifier on frozen features, and backbone + head as one model.

The head is trained on standardised features (well conditioned for L-BFGS) and the
standardisation is then folded into its weights, so the result is a single
``nn.Linear(D, k)`` on raw backbone features: the attribution engine explains
``Backbone -> Linear`` and has no rule for normalisation layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from probe.devices import model_device

from .clustering import as_matrix, check_finite
from .errors import DataError

_CHUNK = 65536


@dataclass
class HeadReport:
    """How well the head predicts the cluster ids, on its training split and on held-out images."""

    train_accuracy: float
    heldout_accuracy: float | None
    n_train: int
    n_heldout: int
    num_classes: int
    iterations: int
    loss: float
    weight_decay: float
    heldout_fraction: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices with ``fraction`` of every class held out (classes of one stay in train)."""
    rng = np.random.default_rng(seed)
    train, heldout = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        take = int(round(fraction * len(members))) if len(members) > 1 else 0
        take = min(take, len(members) - 1)
        heldout.append(members[:take])
        train.append(members[take:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(heldout))


def _accuracy(head: nn.Linear, x: np.ndarray, y: np.ndarray) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), _CHUNK):
            logits = head(torch.from_numpy(np.ascontiguousarray(x[start : start + _CHUNK])))
            correct += int((logits.argmax(1).numpy() == y[start : start + _CHUNK]).sum())
    return correct / max(len(x), 1)


def fold_standardisation(weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> nn.Linear:
    """``nn.Linear`` on raw ``x`` equal to ``weight @ ((x - mean) / std) + bias`` (folded in float64)."""
    folded = weight.double() / std.double()
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(folded.float())
        head.bias.copy_((bias.double() - folded @ mean.double()).float())
    return head.eval()


def train_head(
    features: Any,
    labels: Any,
    *,
    seed: int = 0,
    num_classes: int | None = None,
    heldout: float = 0.2,
    weight_decay: float = 1e-3,
    max_iter: int = 200,
) -> tuple[nn.Linear, HeadReport]:
    """Fit ``nn.Linear(D, k)`` predicting ``labels`` (cluster ids) from raw ``features``.

    Full-batch L-BFGS on the multinomial logistic loss of standardised features, with
    L2 penalty ``weight_decay``; ``heldout`` of each class (stratified, seeded) is kept
    out of training to report held-out accuracy. The returned head is the one that
    was evaluated, on CPU, float32.
    """
    x, paths = as_matrix(features)
    check_finite(x, paths)
    y = np.asarray(labels).astype(np.int64, copy=False).ravel()
    if len(y) != len(x):
        raise DataError(f"{len(y)} labels for {len(x)} feature vectors")
    if y.min() < 0:
        raise DataError("labels must be cluster ids >= 0")
    k = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if k < 2 or y.max() >= k:
        raise DataError(f"need at least 2 classes with ids below num_classes={k}; got ids up to {y.max()}")
    if not 0.0 <= heldout < 1.0:
        raise DataError(f"heldout must be in [0, 1), got {heldout}")
    train_idx, heldout_idx = stratified_split(y, heldout, seed)

    x_train = torch.from_numpy(x[train_idx])
    y_train = torch.from_numpy(y[train_idx])
    mean = x_train.sum(0, dtype=torch.float64) / len(x_train)
    centred = x_train - mean.float()
    std = (centred.pow(2).sum(0, dtype=torch.float64) / len(x_train)).sqrt().clamp_min(1e-6)
    z_train = centred.div_(std.float())
    weight = torch.zeros(k, x.shape[1], requires_grad=True)
    bias = torch.zeros(k, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
    )

    def objective() -> torch.Tensor:
        return F.cross_entropy(z_train @ weight.T + bias, y_train) + 0.5 * weight_decay * weight.pow(2).sum()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    with torch.no_grad():
        final_loss = float(objective())
    iterations = int(optimiser.state[weight].get("n_iter", 0))

    head = fold_standardisation(weight.detach(), bias.detach(), mean, std)
    report = HeadReport(
        train_accuracy=_accuracy(head, x[train_idx], y[train_idx]),
        heldout_accuracy=_accuracy(head, x[heldout_idx], y[heldout_idx]) if len(heldout_idx) else None,
        n_train=len(train_idx),
        n_heldout=len(heldout_idx),
        num_classes=k,
        iterations=iterations,
        loss=final_loss,
        weight_decay=weight_decay,
        heldout_fraction=heldout,
        seed=seed,
    )
    return head, report


class ProbeModel(nn.Module):
    """Backbone followed by the pseudo-class head: images ``[N, 3, H, W]`` -> pseudo-class logits ``[N, k]``.

    This is the model ``probe.explain`` attributes; preprocessing attributes are the backbone's.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        if not isinstance(head, nn.Linear):
            raise DataError(f"the head must be an nn.Linear, got {type(head).__name__}")
        feature_dim = getattr(backbone, "feature_dim", head.in_features)
        if head.in_features != feature_dim:
            raise DataError(f"head expects {head.in_features} features, backbone gives {feature_dim}")
        self.backbone = backbone
        self.head = head.to(model_device(backbone, default=model_device(head)))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("preprocess", "mean", "std", "input_size", "feature_dim", "arch", "format", "source"):
                return getattr(super().__getattr__("backbone"), name)
            raise
