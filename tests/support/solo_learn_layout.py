"""Write a Lightning checkpoint in the layout solo-learn's current release (1.0.6) writes, for BYOL or SimCLR.

solo-learn itself cannot be installed here: its PyPI release (1.0.2) pins torch 1.9.1, which does not install
next to torch 2.x. So this file is **not written by solo-learn**. It is made from the layout read in solo-learn's
source (vturrisi/solo-learn at 9187ea3: ``solo/methods/base.py``, ``byol.py``, ``simclr.py``,
``solo/utils/checkpointer.py``): a LightningModule with solo-learn's attribute names and head shapes,
trained for a step or two and saved by a real pytorch-lightning ``Trainer.save_checkpoint``, which is what
solo-learn's ``Checkpointer`` callback calls. What that layout is:

- ``backbone``: torchvision ``resnet18`` with ``fc = Identity()``; for CIFAR runs ``conv1`` is a 3x3,
  stride 1, padding 2 convolution and ``maxpool`` is ``Identity()``;
- ``classifier``: the online linear probe, ``Linear(512, num_classes)``, trained on detached features;
- BYOL adds ``projector`` (Linear, BatchNorm1d, ReLU, Linear), ``predictor`` (same shape),
  ``momentum_backbone`` and ``momentum_projector`` (exponential moving averages of the online ones);
- SimCLR adds ``projector`` (Linear, ReLU, Linear);
- solo-learn never calls ``save_hyperparameters``, so there is no ``hyper_parameters`` entry.

A resnet18 file with its momentum copy is about 90 MB, too large to commit, so the tests write one at test
time with this module. By hand: ``python -m tests.support.solo_learn_layout OUT.ckpt --method byol --cifar``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

NUM_CLASSES = 10
PROJ_HIDDEN, PROJ_OUT, PRED_HIDDEN = 64, 32, 64


def solo_backbone(cifar: bool) -> nn.Module:
    """torchvision resnet18 the way solo-learn's BaseMethod prepares it."""
    backbone = torchvision.models.resnet18()
    backbone.fc = nn.Identity()
    if cifar:
        backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
        backbone.maxpool = nn.Identity()
    return backbone


class SoloLayout(pl.LightningModule):
    """solo-learn's BYOL or SimCLR module layout (names and shapes), trained with simple losses."""

    def __init__(self, method: str, cifar: bool, tau: float = 0.99) -> None:
        super().__init__()
        self.method, self.tau = method, tau
        self.backbone = solo_backbone(cifar)
        self.classifier = nn.Linear(512, NUM_CLASSES)
        if method == "byol":
            self.projector = nn.Sequential(
                nn.Linear(512, PROJ_HIDDEN), nn.BatchNorm1d(PROJ_HIDDEN), nn.ReLU(), nn.Linear(PROJ_HIDDEN, PROJ_OUT)
            )
            self.momentum_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
            self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)
            self.predictor = nn.Sequential(
                nn.Linear(PROJ_OUT, PRED_HIDDEN),
                nn.BatchNorm1d(PRED_HIDDEN),
                nn.ReLU(),
                nn.Linear(PRED_HIDDEN, PROJ_OUT),
            )
        elif method == "simclr":
            self.projector = nn.Sequential(nn.Linear(512, PROJ_HIDDEN), nn.ReLU(), nn.Linear(PROJ_HIDDEN, PROJ_OUT))
        else:
            raise ValueError(f"method must be 'byol' or 'simclr', got {method!r}")

    def training_step(self, batch, batch_idx):
        (x0, x1), targets = batch
        feats = [self.backbone(x0), self.backbone(x1)]
        z = [self.projector(f) for f in feats]
        if self.method == "byol":
            with torch.no_grad():
                targets_z = [self.momentum_projector(self.momentum_backbone(x)) for x in (x0, x1)]
            p = [self.predictor(zi) for zi in z]
            loss = 2 - F.cosine_similarity(p[0], targets_z[1]).mean() - F.cosine_similarity(p[1], targets_z[0]).mean()
        else:
            logits = F.normalize(z[0], dim=1) @ F.normalize(z[1], dim=1).T / 0.2
            loss = F.cross_entropy(logits, torch.arange(len(x0)))
        return loss + F.cross_entropy(self.classifier(feats[0].detach()), targets)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.method == "byol":  # solo-learn's MomentumUpdater: an exponential moving average
            for online, momentum in (
                (self.backbone, self.momentum_backbone),
                (self.projector, self.momentum_projector),
            ):
                for p_online, p_momentum in zip(online.parameters(), momentum.parameters()):
                    p_momentum.data.mul_(self.tau).add_(p_online.data, alpha=1 - self.tau)

    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.1)


def write(path: Path, method: str, *, cifar: bool, steps: int = 2, seed: int = 0) -> SoloLayout:
    """Train ``steps`` batches of random 32 px images and save with ``Trainer.save_checkpoint``; returns the module."""
    torch.manual_seed(seed)
    model = SoloLayout(method, cifar)
    images = torch.rand(8, 2, 3, 32, 32)
    data = [((images[i, 0], images[i, 1]), i % NUM_CLASSES) for i in range(len(images))]
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4))
    trainer.save_checkpoint(path)
    return model.eval()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--method", choices=("byol", "simclr"), default="byol")
    parser.add_argument("--cifar", action="store_true", help="solo-learn's CIFAR stem (3x3, padding 2, no max-pool)")
    options = parser.parse_args()
    write(options.out, options.method, cifar=options.cifar)
    print(f"wrote {options.out}")
