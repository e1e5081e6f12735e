"""Checkpoints written by the real libraries load with the writer's own features, from the right branch.

Each test trains a tiny model for two steps with the library's public code (its models, heads, losses and
Lightning's ``Trainer.save_checkpoint``), loads the file with ``backbones.load`` and compares features with the
library's own backbone forward. Models with a second branch (momentum copy, student) check that the other
branch gives different features, so choosing it would fail. Libraries come from the ``interop`` extra.
solo-learn cannot be installed with torch 2.x: its layout is written by ``solo_learn_layout.py`` (see there).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision

import backbones

pl = pytest.importorskip("pytorch_lightning", reason="interop extra not installed (pip install -e '.[interop]')")
lightly_loss = pytest.importorskip("lightly.loss")
from lightly.models import ResNetGenerator  # noqa: E402
from lightly.models.modules import (  # noqa: E402
    BYOLPredictionHead,
    BYOLProjectionHead,
    DINOProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum  # noqa: E402
from lightly.utils.benchmarking import OnlineLinearClassifier  # noqa: E402

SIZE = 32
X = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def fit_and_save(module: pl.LightningModule, path: Path, steps: int = 2) -> Path:
    """Two training steps on random two-view 32 px batches, then ``Trainer.save_checkpoint``, as a run would."""
    images = torch.rand(8, 2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    data = [((images[i, 0], images[i, 1]), i % 4) for i in range(len(images))]
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and logging
        trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=4))
    trainer.save_checkpoint(path)
    return path


def pooled(module: nn.Module) -> torch.Tensor:
    """The writer's own backbone output, flattened, in eval mode."""
    with torch.no_grad():
        return module.eval()(X).flatten(start_dim=1)


def loaded_features(path: Path, **kwargs) -> tuple[backbones.Backbone, torch.Tensor]:
    backbone = backbones.load(path, **kwargs)
    with torch.no_grad():
        return backbone, backbone(X)


def assert_right_branch(path: Path, right: nn.Module, wrong: nn.Module | None, fmt: str, arch: str) -> None:
    backbone, got = loaded_features(path)
    assert (backbone.format, backbone.arch) == (fmt, arch)
    torch.testing.assert_close(got, pooled(right), atol=1e-5, rtol=1e-5)
    if wrong is not None:
        assert not torch.allclose(got, pooled(wrong), atol=1e-4), "the other branch gives the same features"


def children_trunk() -> nn.Sequential:
    """lightly's example backbone: ``Sequential(*resnet18.children()[:-1])``."""
    return nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])


class Base(pl.LightningModule):
    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.5)


# lightly's examples/pytorch_lightning (simclr.py, moco.py, byol.py, dino.py), as they build and train.
class SimCLR(Base):
    def __init__(self):
        super().__init__()
        self.backbone = children_trunk()
        self.projection_head = SimCLRProjectionHead(512, 64, 32)
        self.criterion = lightly_loss.NTXentLoss()

    def training_step(self, batch, batch_index):
        x0, x1 = batch[0]
        return self.criterion(*(self.projection_head(self.backbone(x).flatten(start_dim=1)) for x in (x0, x1)))


class MoCo(Base):
    def __init__(self):
        super().__init__()
        self.backbone = children_trunk()
        self.projection_head = MoCoProjectionHead(512, 64, 32)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = lightly_loss.NTXentLoss(memory_bank_size=(64, 32))

    def training_step(self, batch, batch_idx):
        update_momentum(self.backbone, self.backbone_momentum, m=0.9)
        update_momentum(self.projection_head, self.projection_head_momentum, m=0.9)
        x_query, x_key = batch[0]
        query = self.projection_head(self.backbone(x_query).flatten(start_dim=1))
        key = self.projection_head_momentum(self.backbone_momentum(x_key).flatten(start_dim=1)).detach()
        return self.criterion(query, key)


class BYOL(Base):
    def __init__(self):
        super().__init__()
        self.backbone = children_trunk()
        self.projection_head = BYOLProjectionHead(512, 64, 32)
        self.prediction_head = BYOLPredictionHead(32, 64, 32)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = lightly_loss.NegativeCosineSimilarity()

    def training_step(self, batch, batch_idx):
        update_momentum(self.backbone, self.backbone_momentum, m=0.9)
        update_momentum(self.projection_head, self.projection_head_momentum, m=0.9)
        x0, x1 = batch[0]
        p0, p1 = (self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1))) for x in (x0, x1))
        with torch.no_grad():
            z0, z1 = (self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)) for x in (x0, x1))
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))


class DINO(Base):
    def __init__(self):
        super().__init__()
        backbone = children_trunk()
        self.student_backbone = backbone
        self.student_head = DINOProjectionHead(512, 64, 16, 128, freeze_last_layer=1)
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = DINOProjectionHead(512, 64, 16, 128)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        self.criterion = lightly_loss.DINOLoss(output_dim=128, warmup_teacher_temp_epochs=1)

    def training_step(self, batch, batch_idx):
        update_momentum(self.student_backbone, self.teacher_backbone, m=0.9)
        update_momentum(self.student_head, self.teacher_head, m=0.9)
        views = list(batch[0])
        teacher = [self.teacher_head(self.teacher_backbone(v).flatten(start_dim=1)) for v in views]
        student = [self.student_head(self.student_backbone(v).flatten(start_dim=1)) for v in views]
        return self.criterion(teacher, student, epoch=self.current_epoch)

    def on_after_backward(self):
        self.student_head.cancel_last_layer_gradients(current_epoch=self.current_epoch)


class BenchmarkBYOL(Base):
    """lightly's benchmarks/imagenet/resnet50/byol.py layout: a torchvision ResNet as ``backbone``,
    ``teacher_backbone`` momentum copy, ``online_classifier``."""

    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet18()
        resnet.fc = nn.Identity()
        self.backbone = resnet
        self.projection_head = BYOLProjectionHead(512, 64, 32)
        self.prediction_head = BYOLPredictionHead(32, 64, 32)
        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_projection_head = BYOLProjectionHead(512, 64, 32)
        self.criterion = lightly_loss.NegativeCosineSimilarity()
        self.online_classifier = OnlineLinearClassifier(feature_dim=512, num_classes=4, topk=(1,))

    def training_step(self, batch, batch_idx):
        update_momentum(self.backbone, self.teacher_backbone, m=0.9)
        update_momentum(self.projection_head, self.teacher_projection_head, m=0.9)
        (x0, x1), targets = batch
        features = self.backbone(x0)
        p1 = self.prediction_head(self.projection_head(self.backbone(x1)))
        with torch.no_grad():
            z0 = self.teacher_projection_head(self.teacher_backbone(x0))
        loss, _ = self.online_classifier.training_step((features.detach(), targets), batch_idx)
        return 2 * self.criterion(z0, p1) + loss


class GeneratorMoCo(Base):
    """lightly's CIFAR-10 benchmark: a ResNetGenerator trunk with SplitBatchNorm, ``backbone_momentum``."""

    def __init__(self):
        super().__init__()
        resnet = ResNetGenerator("resnet-18", width=0.25, num_splits=2)
        self.backbone = nn.Sequential(*list(resnet.children())[:-1], nn.AdaptiveAvgPool2d(1))
        self.projection_head = MoCoProjectionHead(128, 64, 32)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = lightly_loss.NTXentLoss(memory_bank_size=(64, 32))

    training_step = MoCo.training_step


@pytest.mark.parametrize(
    "model_class, wrong_branch",
    [(SimCLR, None), (MoCo, "backbone_momentum"), (BYOL, "backbone_momentum"), (BenchmarkBYOL, "teacher_backbone")],
)
def test_lightly_models_load_their_online_backbone(model_class, wrong_branch, tmp_path):
    torch.manual_seed(0)
    model = model_class()
    path = fit_and_save(model, tmp_path / f"{model_class.__name__}.ckpt")
    wrong = getattr(model, wrong_branch) if wrong_branch else None
    assert_right_branch(path, model.backbone, wrong, "lightly", "resnet18")


def test_lightly_dino_loads_the_teacher(tmp_path):
    torch.manual_seed(0)
    model = DINO()
    path = fit_and_save(model, tmp_path / "dino.ckpt")
    assert "criterion.center" in torch.load(path, weights_only=True)["state_dict"]
    assert_right_branch(path, model.teacher_backbone, model.student_backbone, "lightly", "resnet18")
    assert any("teacher" in note for note in backbones.inspect(path).notes)


def test_lightly_tutorial_bare_trunk_loads_and_forcing_plain_says_why_not(tmp_path):
    """``torch.save(model.backbone.state_dict())``: keys 0.weight, 1.running_mean, 4.0.conv1.weight."""
    torch.manual_seed(0)
    model = SimCLR()
    fit_and_save(model, tmp_path / "unused.ckpt")
    path = tmp_path / "backbone.pth"
    torch.save(model.backbone.state_dict(), path)
    assert_right_branch(path, model.backbone, None, "lightly", "resnet18")
    with pytest.raises(backbones.ArchitectureError) as info:
        backbones.load(path, format="plain", arch="resnet18")
    assert "leftover prefix" not in str(info.value)


def test_lightly_resnet_generator_module_and_split_batchnorm_trunk(tmp_path):
    torch.manual_seed(0)
    resnet = ResNetGenerator("resnet-18", width=0.5, num_classes=10)
    module_path = tmp_path / "resnet.pth"
    torch.save(resnet.state_dict(), module_path)
    resnet.linear = nn.Identity()  # lightly's own way to get features (docs, getting_started/advanced)
    assert_right_branch(module_path, resnet, None, "lightly", "lightly_resnet")

    model = GeneratorMoCo()
    path = fit_and_save(model, tmp_path / "cifar10_benchmark.ckpt")
    assert torch.load(path, weights_only=True)["state_dict"]["backbone.1.running_mean"].numel() == 2 * 16
    assert_right_branch(path, model.backbone, model.backbone_momentum, "lightly", "lightly_resnet_trunk")
    assert any("SplitBatchNorm" in note for note in backbones.inspect(path).notes)


def test_byol_pytorch_learner_and_its_readme_save(tmp_path):
    byol_pytorch = pytest.importorskip("byol_pytorch")
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    learner = byol_pytorch.BYOL(resnet, image_size=SIZE, hidden_layer="avgpool", projection_size=32,
                                projection_hidden_size=64, moving_average_decay=0.5)  # fmt: skip
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.5)
    for _ in range(2):
        loss = learner(torch.rand(4, 3, SIZE, SIZE))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learner.update_moving_average()
    learner.eval()
    path = tmp_path / "learner.pt"
    torch.save(learner.state_dict(), path)
    backbone, got = loaded_features(path)
    assert (backbone.format, backbone.arch) == ("byol", "resnet18")
    with torch.no_grad():
        online = learner(X, return_embedding=True, return_projection=False)
        target = learner.target_encoder.get_representation(X)
    torch.testing.assert_close(got, online, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, target, atol=1e-4)

    readme = tmp_path / "improved-net.pt"  # the README's `torch.save(resnet.state_dict(), ...)`
    torch.save(resnet.state_dict(), readme)
    resnet.fc = nn.Identity()
    assert_right_branch(readme, resnet, None, "plain", "resnet18")


def test_timm_files_pth_safetensors_and_train_saver_with_ema(tmp_path):
    import timm
    from timm.utils import CheckpointSaver, ModelEmaV3

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=4)
    ema = ModelEmaV3(model, decay=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        loss = nn.functional.cross_entropy(model(torch.rand(4, 3, SIZE, SIZE)), torch.arange(4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(model)
    saver = CheckpointSaver(model, optimizer, model_ema=ema, checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path))
    saver.save_checkpoint(epoch=0, metric=0.5)
    torch.save(model.state_dict(), tmp_path / "resnet18.pth")
    timm.models.save_for_hf(model, tmp_path / "hub", safe_serialization=True)
    features, ema_features = copy.deepcopy(model), copy.deepcopy(ema.module)
    features.reset_classifier(0)
    ema_features.reset_classifier(0)
    for name in ("checkpoint-0.pth.tar", "resnet18.pth", "hub/model.safetensors"):
        assert_right_branch(tmp_path / name, features, ema_features, "plain", "resnet18")
    assert any("state_dict_ema" in note for note in backbones.inspect(tmp_path / "checkpoint-0.pth.tar").notes)


@pytest.mark.parametrize("name, arch", [("resnet18", "resnet18"), ("vgg16", "vgg16"), ("vgg11_bn", "vgg11_bn")])
def test_torchvision_state_dicts(name, arch, tmp_path):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    path = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), path)
    if name.startswith("vgg"):  # the penultimate classifier layer (docs/BACKBONES.md says why)
        model.classifier = model.classifier[:-1]
    else:
        model.fc = nn.Identity()
    assert_right_branch(path, model, None, "plain", arch)


@pytest.mark.parametrize("method, cifar, arch", [("byol", True, "resnet18_cifar"), ("simclr", False, "resnet18")])
def test_solo_learn_layout(method, cifar, arch, tmp_path):
    from tests.support import solo_learn_layout

    model = solo_learn_layout.write(tmp_path / f"{method}.ckpt", method, cifar=cifar)
    wrong = getattr(model, "momentum_backbone", None)
    assert_right_branch(tmp_path / f"{method}.ckpt", model.backbone, wrong, "solo_learn", arch)
