"""Every supported family: a file in its exact layout, written from a seeded model, loads to identical features."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file
from torchvision import transforms

import backbones
from tests.support.layouts import (
    IMAGENET,
    assert_same_features,
    mlp_head,
    randomize_norms,
    save,
    shared,
    state,
    torchvision_resnet,
    vit_small,
    zeros_like_keys,
)

CIFAR = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
SWAV = ((0.485, 0.456, 0.406), (0.228, 0.224, 0.225))


@dataclass
class Case:
    ref: str  # fixture name of the reference model
    write: Callable[[nn.Module, Path], Path]
    format: str
    arch: str
    norm: tuple | None
    size: int  # input size of the feature comparison
    input_size: int = 224
    interpolation: str = "bilinear"
    caveat: str | None = None  # the one BackboneWarning this file should raise, if any
    arch_given: str | None = None  # arch= for files whose weights cannot say it (a bare ViT-S)


def moco_v2(ref, tmp):
    sd = state(ref, "module.encoder_q.")
    sd.update(mlp_head("module.encoder_q.fc.", [512, 512, 128], bn=False, seed=5))
    sd.update(shared(sd, "module.encoder_q.", "module.encoder_k."))
    sd["module.queue"] = torch.randn(128, 4096)
    sd["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return save(
        {
            "epoch": 200,
            "arch": "resnet18",
            "state_dict": sd,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.03, "params": [0, 1]}]},
        },
        tmp / "moco_v2_200ep_pretrain.pth.tar",
    )


def moco_v1_no_ddp(ref, tmp):
    sd = state(ref, "encoder_q.")
    sd["encoder_q.fc.weight"], sd["encoder_q.fc.bias"] = torch.randn(128, 128), torch.randn(128)
    sd.update(state(ref, "encoder_k."))
    sd["queue"], sd["queue_ptr"] = torch.randn(128, 256), torch.zeros(1, dtype=torch.long)
    return save({"state_dict": sd}, tmp / "moco_v1.pth.tar")


def moco_v3_resnet(ref, tmp):
    sd = state(ref, "module.base_encoder.")
    proj = mlp_head("module.base_encoder.fc.", [512, 1024, 256], bn=True, seed=6)
    sd.update(proj)
    sd.update(shared(sd, "module.base_encoder.", "module.momentum_encoder."))
    sd.update(mlp_head("module.predictor.", [256, 1024, 256], bn=True, seed=7))
    scaler = {
        "scale": 65536.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 0,
    }
    return save(
        {"epoch": 100, "arch": "resnet50", "state_dict": sd, "optimizer": {}, "scaler": scaler},
        tmp / "r-50-100ep.pth.tar",
    )


def moco_v3_vit(ref, tmp):
    sd = state(ref, "module.base_encoder.")
    sd.update(mlp_head("module.base_encoder.head.", [384, 512, 512, 256], bn=True, seed=8))
    sd.update(shared(sd, "module.base_encoder.", "module.momentum_encoder."))
    sd.update(mlp_head("module.predictor.", [256, 512, 256], bn=True, seed=9))
    return save({"epoch": 300, "arch": "vit_small", "state_dict": sd, "optimizer": {}}, tmp / "vit-s-300ep.pth.tar")


def moco_v3_lincls(ref, tmp):
    sd = state(ref, "module.")
    sd["module.head.weight"], sd["module.head.bias"] = torch.randn(1000, 384), torch.randn(1000)
    return save(
        {"epoch": 90, "arch": "vit_small", "state_dict": sd, "best_acc1": torch.tensor(73.2), "optimizer": {}},
        tmp / "linear-vit-s-300ep.pth.tar",
    )


def simclr_v1(ref, tmp):
    sd = state(ref)
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 128), torch.randn(1000)
    return save({"state_dict": sd}, tmp / "resnet50-1x.pth")


def byol_convert(ref, tmp):
    sd = state(ref, drop_bn_counters=True)
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 128), torch.randn(1000)
    return save(sd, tmp / "pretrain_res50x1.pth.tar")


def byol_learner(ref, tmp):
    sd = state(ref, "net.")
    sd.update(shared(sd, "net.", "online_encoder.net."))
    sd.update(mlp_head("online_encoder.projector.net.", [128, 256, 64], bn=True, seed=10))
    sd.update(mlp_head("online_predictor.net.", [64, 256, 64], bn=True, seed=11))
    sd.update(shared(sd, "net.", "target_encoder.net."))
    return save(sd, tmp / "byol-learner.pt")


def dino_full_vit(ref, tmp):
    head = mlp_head("head.mlp.", [384, 512, 512, 64], bn=False, seed=12)
    head["head.last_layer.weight_g"], head["head.last_layer.weight_v"] = torch.ones(1024, 1), torch.randn(1024, 64)
    teacher = {**state(ref, "backbone."), **head}
    student = zeros_like_keys(teacher, "", "module.")  # a different network: loading it would show
    args = argparse.Namespace(
        arch="vit_small", patch_size=16, out_dim=1024, lr=0.0005, data_path="/data/imagenet", use_fp16=True
    )
    obj = {
        "student": student,
        "teacher": teacher,
        "optimizer": {},
        "epoch": 100,
        "args": args,
        "dino_loss": {"center": torch.zeros(1, 1024)},
    }
    return save(obj, tmp / "dino_deitsmall16_pretrain_full_checkpoint.pth")


def dino_full_resnet(ref, tmp):
    teacher = {**state(ref, "module.backbone."), **mlp_head("module.head.mlp.", [128, 256, 64], bn=False, seed=13)}
    student = zeros_like_keys(teacher, "", "")
    args = argparse.Namespace(arch="resnet50", out_dim=60000)
    return save({"student": student, "teacher": teacher, "epoch": 100, "args": args}, tmp / "dino_resnet50_full.pth")


def dino_vit_backbone(ref, tmp):
    return save(state(ref), tmp / "dino_deitsmall16_pretrain.pth")


def swav(ref, tmp):
    sd = state(ref, "module.")
    sd.update(mlp_head("module.projection_head.", [128, 256, 128], bn=True, seed=14))
    sd["module.prototypes.weight"] = torch.randn(300, 128)
    return save(sd, tmp / "swav_800ep_pretrain.pth.tar")


def deepcluster_v2(ref, tmp):
    sd = state(ref, "module.")
    sd.update(mlp_head("module.projection_head.", [128, 64, 32], bn=True, seed=15))
    for i in range(3):
        sd[f"module.prototypes.prototypes{i}.weight"] = torch.randn(100, 32)
    return save({"epoch": 400, "state_dict": sd, "optimizer": {}}, tmp / "deepclusterv2_400ep_pretrain.pth.tar")


def barlow_full(ref, tmp):
    sd = state(ref, "module.backbone.")
    sd.update(mlp_head("module.projector.", [128, 512, 512, 512], bn=True, seed=16))
    bn = nn.BatchNorm1d(512, affine=False)
    sd.update(state(bn, "module.bn."))
    return save(
        {
            "epoch": 1000,
            "model": sd,
            "optimizer": {
                "state": {},
                "param_groups": [{"weight_decay_filter": True, "lars_adaptation_filter": True, "params": [0]}],
            },
        },
        tmp / "checkpoint.pth",
    )


def backbone_only(ref, tmp):
    return save(state(ref), tmp / "resnet50.pth")


def solo_cifar(ref, tmp):
    sd = state(ref, "backbone.")
    sd.update(shared(sd, "backbone.", "momentum_backbone."))
    sd.update(mlp_head("projector.", [512, 256, 128], bn=True, seed=17))
    sd.update(mlp_head("momentum_projector.", [512, 256, 128], bn=True, seed=18))
    sd["classifier.weight"], sd["classifier.bias"] = torch.randn(10, 512), torch.randn(10)
    sd["queue"], sd["queue_ptr"] = torch.randn(2, 128, 512), torch.zeros(1, dtype=torch.long)
    obj = {
        "epoch": 399,
        "global_step": 77600,
        "pytorch-lightning_version": "2.1.3",
        "state_dict": sd,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 400}}}},
        "callbacks": {"LearningRateMonitor": {}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.3, "exclude_bias_n_norm": True, "params": [0]}]}],
        "lr_schedulers": [{"base_lrs": [0.3], "last_epoch": 399}],
    }
    return save(obj, tmp / "mocov2plus-cifar10-abc123-ep=399.ckpt")


def solo_encoder(ref, tmp):
    """An older solo-learn release: `encoder.` instead of `backbone.`."""
    sd = {**state(ref, "encoder."), **mlp_head("projector.", [128, 64, 32], bn=True, seed=19)}
    return save({"state_dict": sd, "pytorch-lightning_version": "1.5.0", "epoch": 5}, tmp / "simclr-old.ckpt")


def lightly_numeric(ref, tmp):
    children = dict(ref.named_children())
    order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    sd = {}
    for index, name in enumerate(order):
        sd.update(state(children[name], f"backbone.{index}."))
    sd.update(shared(sd, "backbone.", "backbone_momentum."))
    sd.update(mlp_head("projection_head.layers.", [512, 256, 64], bn=True, seed=20))
    sd.update(mlp_head("prediction_head.layers.", [64, 256, 64], bn=True, seed=21))
    return save(
        {"state_dict": sd, "pytorch-lightning_version": "2.2.0", "epoch": 10, "hyper_parameters": {"batch_size": 256}},
        tmp / "byol-lightly.ckpt",
    )


def lightly_benchmark(ref, tmp):
    sd = state(ref, "backbone.")
    sd.update(shared(sd, "backbone.", "backbone_momentum."))
    sd.update(mlp_head("projection_head.layers.", [128, 64, 32], bn=True, seed=22))
    sd["online_classifier.classification_head.weight"] = torch.randn(10, 128)
    sd["online_classifier.classification_head.bias"] = torch.randn(10)
    return save(
        {
            "state_dict": sd,
            "pytorch-lightning_version": "2.2.0",
            "hyper_parameters": {"batch_size_per_device": 128, "num_classes": 10},
        },
        tmp / "simclr-lightly.ckpt",
    )


def vissl(ref, tmp):
    trunk = state(ref, "_feature_blocks.")
    heads = mlp_head("0.clf.0.", [128, 64], bn=False, seed=23)
    classy = {"base_model": {"model": {"trunk": trunk, "heads": heads}, "meta": {}}, "optimizer": {"num_updates": 10}}
    obj = {
        "phase_idx": 799,
        "iteration": 1000,
        "iteration_num": 1000,
        "train_phase_idx": 399,
        "loss": {"queue": torch.randn(128, 64)},
        "classy_state_dict": classy,
    }
    return save(obj, tmp / "model_final_checkpoint_phase799.torch")


def torchvision_plain(ref, tmp):
    sd = state(ref)
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return save(sd, tmp / "resnet18-f37072fd.pth")


def timm_safetensors(ref, tmp):
    sd = state(ref)
    sd["head.weight"], sd["head.bias"] = torch.randn(1000, 384), torch.randn(1000)
    save_file(sd, str(tmp / "model.safetensors"))
    return tmp / "model.safetensors"


def legacy_moco(ref, tmp):
    sd = state(ref, "module.encoder_q.")
    sd.update(shared(sd, "module.encoder_q.", "module.encoder_k."))
    sd["module.encoder_q.fc.weight"], sd["module.encoder_q.fc.bias"] = torch.randn(128, 128), torch.randn(128)
    torch.save({"state_dict": sd, "arch": "resnet_small"}, tmp / "legacy.pth.tar", _use_new_zipfile_serialization=False)
    return tmp / "legacy.pth.tar"


CASES = {
    "moco_v2": Case("resnet18_ref", moco_v2, "moco", "resnet18", IMAGENET, 64),
    "moco_v1_no_ddp": Case("small_ref", moco_v1_no_ddp, "moco", "resnet_small", IMAGENET, 64, input_size=64),
    "moco_v3_resnet": Case("resnet18_ref", moco_v3_resnet, "moco_v3", "resnet18", IMAGENET, 64),
    "moco_v3_vit": Case("vit12_ref", moco_v3_vit, "moco_v3", "vit_small_patch16_mocov3", IMAGENET, 32, input_size=32),
    "moco_v3_lincls": Case(
        "vit12_ref", moco_v3_lincls, "moco_v3", "vit_small_patch16_mocov3", IMAGENET, 32, input_size=32
    ),
    "simclr_v1": Case("small_ref", simclr_v1, "simclr_v1", "resnet_small", None, 64, input_size=64),
    "byol_convert": Case("small_ref", byol_convert, "byol", "resnet_small", IMAGENET, 64, input_size=64),
    "byol_learner": Case("small_ref", byol_learner, "byol", "resnet_small", IMAGENET, 64, input_size=64),
    "dino_full_vit": Case(
        "vit6_ref", dino_full_vit, "dino", "vit_small_patch16", IMAGENET, 32, input_size=32, interpolation="bicubic"
    ),
    "dino_full_resnet": Case(
        "small_ref", dino_full_resnet, "dino", "resnet_small", IMAGENET, 64, input_size=64, interpolation="bicubic"
    ),
    "dino_vit_backbone": Case(
        "vit6_ref",
        dino_vit_backbone,
        "dino",
        "vit_small_patch16",
        IMAGENET,
        32,
        input_size=32,
        interpolation="bicubic",
        arch_given="vit_small_patch16",
    ),
    "swav": Case("small_ref", swav, "swav", "resnet_small", SWAV, 64, input_size=64),
    "deepcluster_v2": Case("small_ref", deepcluster_v2, "swav", "resnet_small", SWAV, 64, input_size=64),
    "barlow_twins_full": Case("small_ref", barlow_full, "barlow_twins", "resnet_small", IMAGENET, 64, input_size=64),
    "backbone_only_file": Case("small_ref", backbone_only, "plain", "resnet_small", IMAGENET, 64, input_size=64),
    "solo_learn_cifar": Case("cifar_ref", solo_cifar, "solo_learn", "resnet18_cifar", CIFAR, 32, input_size=32),
    "solo_learn_encoder": Case("small_ref", solo_encoder, "solo_learn", "resnet_small", CIFAR, 64, input_size=64),
    "lightly_numeric": Case("resnet18_ref", lightly_numeric, "lightly", "resnet18", IMAGENET, 64),
    "lightly_benchmark": Case("small_ref", lightly_benchmark, "lightly", "resnet_small", IMAGENET, 64, input_size=64),
    "vissl": Case("small_ref", vissl, "vissl", "resnet_small", IMAGENET, 64, input_size=64),
    "torchvision": Case("resnet18_ref", torchvision_plain, "plain", "resnet18", IMAGENET, 64),
    "timm_safetensors": Case(
        "vit6_ref",
        timm_safetensors,
        "plain",
        "vit_small_patch16",
        IMAGENET,
        32,
        input_size=32,
        arch_given="vit_small_patch16",
    ),
    "legacy_torch_file": Case("small_ref", legacy_moco, "moco", "resnet_small", IMAGENET, 64, input_size=64),
}


@pytest.fixture(scope="module")
def cifar_ref() -> nn.Module:
    """solo-learn's CIFAR ResNet-18, built the way solo-learn builds it: torchvision + a new stem."""
    model = torchvision_resnet("resnet18", seed=24)
    torch.manual_seed(24)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    model.maxpool = nn.Identity()
    return randomize_norms(model, 24).eval()


@pytest.mark.parametrize("name", list(CASES))
def test_family_round_trip(name, request, tmp_path):
    case = CASES[name]
    reference = request.getfixturevalue(case.ref)
    path = case.write(reference, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backbone = backbones.load(path, arch=case.arch_given)
    assert [str(w.message) for w in caught if case.caveat is None or case.caveat not in str(w.message)] == []
    assert (backbone.format, backbone.arch) == (case.format, case.arch)
    assert not backbone.training and isinstance(backbone, nn.Module)
    assert_same_features(backbone, reference, case.size)
    assert backbone.input_size == case.input_size
    assert (backbone.mean, backbone.std) == (case.norm if case.norm else (None, None))
    steps = backbone.preprocess.transforms
    normalize = [t for t in steps if isinstance(t, transforms.Normalize)]
    if case.norm is None:
        assert not normalize
    else:
        assert tuple(normalize[0].mean) == case.norm[0] and tuple(normalize[0].std) == case.norm[1]
    crop = next(t for t in steps if isinstance(t, transforms.CenterCrop))
    resize = next(t for t in steps if isinstance(t, transforms.Resize))
    assert crop.size == (case.input_size, case.input_size)
    assert resize.interpolation.value == case.interpolation
    assert backbone.source.path == path and len(backbone.source.sha256) == 64
    assert backbone.feature_dim == backbone(torch.zeros(1, 3, case.size, case.size)).shape[1]


def test_moco_v3_vit_needs_its_twelve_heads(vit12_ref, tmp_path):
    """The same weights in a 6-head ViT give different features: the format's hint is what makes them right."""
    path = moco_v3_vit(vit12_ref, tmp_path)
    six = backbones.load(path, arch="vit_small_patch16")
    twelve = backbones.load(path)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(six(x), twelve(x), atol=1e-3)


@pytest.mark.parametrize("write", [timm_safetensors, dino_vit_backbone])
def test_a_bare_vit_small_needs_arch(write, vit6_ref, tmp_path):
    """A ViT-S state dict does not show its head count: inspect says so, load refuses, and either arch= works."""
    path = write(vit6_ref, tmp_path)
    report = backbones.inspect(path)
    assert not report.loadable and report.arch is None
    assert "vit_small_patch16, vit_small_patch16_mocov3" in report.problems[0]
    with pytest.raises(backbones.ArchitectureError, match="attention heads"):
        backbones.load(path)
    assert_same_features(backbones.load(path, arch="vit_small_patch16"), vit6_ref, 32)
    twelve = vit_small(12, seed=0)
    twelve.load_state_dict(vit6_ref.state_dict())
    assert_same_features(backbones.load(path, arch="vit_small_patch16_mocov3"), twelve, 32)


def test_dino_full_checkpoint_uses_the_teacher(vit6_ref, tmp_path):
    report = backbones.inspect(dino_full_vit(vit6_ref, tmp_path))
    assert report.weights_at == "teacher"
    assert "student" in report.ignored_entries and "args" in report.ignored_entries
    assert report.dropped_summary == ["head.* (8)"]


def test_inspect_groups_the_dropped_keys(resnet18_ref, tmp_path):
    report = backbones.inspect(moco_v2(resnet18_ref, tmp_path))
    assert report.dropped_summary == [
        "module.encoder_q.fc.* (4)",
        f"module.encoder_k.* ({len(resnet18_ref.state_dict()) + 4})",
        "module.queue",
        "module.queue_ptr",
    ]
    assert report.ignored_entries == ["epoch", "arch", "optimizer"]
    assert report.variant == "v2 (MLP head fc.0/fc.2)"
    assert report.loadable and not (report.missing or report.unexpected or report.mismatched)


def test_format_override_reads_a_backbone_only_file_as_its_family(small_ref, tmp_path):
    path = backbone_only(small_ref, tmp_path)
    assert backbones.inspect(path).format == "plain"
    for family in ("vicreg", "barlow_twins"):
        loaded = backbones.load(path, format=family)
        assert loaded.format == family
        assert_same_features(loaded, small_ref, 64)


def test_format_override_changes_the_normalisation(small_ref, tmp_path):
    path = simclr_v1(small_ref, tmp_path)
    assert backbones.load(path).mean is None
    forced = backbones.load(path, format="plain")
    assert forced.format == "plain" and forced.mean == IMAGENET[0]


def test_half_precision_weights_are_loaded_as_float32(small_ref, tmp_path):
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in state(small_ref).items()}
    path = save(sd, tmp_path / "fp16.pth")
    backbone = backbones.load(path)
    assert all(p.dtype == torch.float32 for p in backbone.parameters())
    assert any("float16" in note for note in backbones.inspect(path).notes)


def test_device_argument_places_the_backbone(small_ref, tmp_path):
    path = save(state(small_ref), tmp_path / "small.pth")
    backbone = backbones.load(path, device="cpu")
    assert next(backbone.parameters()).device.type == "cpu"
    auto = backbones.load(path, device="auto")
    assert next(auto.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
