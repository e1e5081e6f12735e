"""Pretraining objectives: they learn, they are deterministic and resumable, and they save native layouts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import backbones
from probe.demo.augment import make_views
from probe.demo.objectives import OBJECTIVES
from probe.demo.pretrain import pretrain, recipe
from probe.demo.world import BACKGROUNDS, render_arrays
from probe.errors import ProbeValueError
from tests.support.demo import TINY_ARCH, TINY_VIEWS, TINY_WORLD, tiny_recipe


def _objective(method: str, seed: int = 0):
    torch.manual_seed(seed)
    kwargs = {"queue_size": 64, "dim": 16, "generator": torch.Generator().manual_seed(seed)} if method == "moco" else {}
    return OBJECTIVES[method](backbones.create("resnet_small", **TINY_ARCH), 6, **kwargs)


@pytest.mark.parametrize("method", sorted(OBJECTIVES))
def test_objective_loss_is_finite_and_falls_on_a_fixed_batch(method):
    objective = _objective(method)
    arrays = render_arrays(TINY_WORLD, 16, seed=1)
    images = torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(arrays[objective.labels])  # the categories, or the background kinds
    gen = torch.Generator().manual_seed(0)
    views = [make_views(images, TINY_VIEWS, gen) for _ in range(objective.views)]
    optimizer = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=3e-3)
    # MoCo's queue would fill with this very batch's keys; hold its negatives fixed to see the gradient work
    fixed_queue = objective.queue.clone() if method == "moco" else None
    losses = []
    for step in range(20):
        if fixed_queue is not None:
            objective.queue.copy_(fixed_queue)
            objective.queue_ptr.zero_()
        loss, logs = objective.loss(views, labels)
        assert torch.isfinite(loss) and set(logs) == {"loss", "online_acc"}
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        objective.after_step((step + 1) / 20)
        losses.append(logs["loss"])
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses


def test_moco_queue_holds_the_latest_keys():
    objective = _objective("moco")
    views = [torch.rand(16, 3, 16, 16), torch.rand(16, 3, 16, 16)]
    objective.loss(views, torch.zeros(16, dtype=torch.long))
    assert objective.queue_ptr.tolist() == [16]
    with torch.no_grad():
        keys = torch.nn.functional.normalize(objective.head_k(objective.backbone_k(views[0])), dim=1)
    # keys come from a shuffled, two-half batch-norm pass, so they match a plain pass only roughly
    cos = (objective.queue[:, :16].t() * keys).sum(1)
    assert cos.min() > 0.9


def test_ssl_objectives_send_no_label_gradient_to_the_backbone():
    for method in ("simclr", "moco", "byol"):
        objective = _objective(method)
        images = torch.rand(8, 3, 16, 16)
        views = [images, images.flip(3)]
        a, _ = objective.loss(views, torch.zeros(8, dtype=torch.long))
        grads_a = torch.autograd.grad(a, list(objective.backbone.parameters()))
        objective = _objective(method)
        b, _ = objective.loss(views, torch.full((8,), 5, dtype=torch.long))
        grads_b = torch.autograd.grad(b, list(objective.backbone.parameters()))
        assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b)), method


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _backbone_keys():
    return set(backbones.create("resnet_small", **TINY_ARCH).state_dict())


def test_simclr_checkpoint_is_the_converted_v1_layout(tmp_path):
    pretrain(tiny_recipe("simclr"), tmp_path / "s.pth", progress=False)
    ckpt = _load(tmp_path / "s.pth")
    assert set(ckpt) == {"state_dict"}
    assert set(ckpt["state_dict"]) == _backbone_keys() | {"fc.weight", "fc.bias"}
    assert ckpt["state_dict"]["fc.weight"].shape == (6, 16)


def test_moco_checkpoint_is_the_v2_layout(tmp_path):
    pretrain(tiny_recipe("moco"), tmp_path / "m.pth", progress=False)
    ckpt = _load(tmp_path / "m.pth")
    assert set(ckpt) == {"epoch", "arch", "state_dict"} and ckpt["epoch"] == 2 and ckpt["arch"] == "resnet_small"
    sd = ckpt["state_dict"]
    head = {"fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"}
    for enc in ("module.encoder_q.", "module.encoder_k."):
        assert {k[len(enc) :] for k in sd if k.startswith(enc)} == _backbone_keys() | head
    assert sd["module.encoder_q.fc.0.weight"].shape == (16, 16) and sd["module.encoder_q.fc.2.weight"].shape == (16, 16)
    assert sd["module.queue"].shape == (16, 64) and sd["module.queue_ptr"].tolist() == [32]
    assert torch.allclose(sd["module.queue"].norm(dim=0), torch.ones(64), atol=1e-5)
    encoders = {k for k in sd if k.startswith(("module.encoder_q.", "module.encoder_k."))}
    assert set(sd) - encoders == {"module.queue", "module.queue_ptr"}


def test_byol_checkpoint_is_a_raw_state_dict_with_the_online_classifier(tmp_path):
    pretrain(tiny_recipe("byol"), tmp_path / "b.pth", progress=False)
    sd = _load(tmp_path / "b.pth")
    expected = {k for k in _backbone_keys() if not k.endswith("num_batches_tracked")} | {"fc.weight", "fc.bias"}
    assert set(sd) == expected
    assert not any(k.endswith("num_batches_tracked") for k in sd)


def test_supervised_checkpoint_is_a_torchvision_state_dict(tmp_path):
    pretrain(tiny_recipe("supervised"), tmp_path / "sup.pth", progress=False)
    sd = _load(tmp_path / "sup.pth")
    assert set(sd) == _backbone_keys() | {"fc.weight", "fc.bias"}
    model = backbones.create("resnet_small", **TINY_ARCH)
    model.fc = torch.nn.Linear(16, 6)
    model.load_state_dict(sd)  # strict: the layout is exactly torchvision's


def test_background_shortcut_is_supervised_on_the_background_kind(tmp_path):
    # a shortcut backbone: the same layout as the supervised one, its classifier over the background kinds
    r = replace(tiny_recipe("supervised"), method="background")
    pretrain(r, tmp_path / "bg.pth", progress=False)
    sd = _load(tmp_path / "bg.pth")
    assert set(sd) == _backbone_keys() | {"fc.weight", "fc.bias"}
    assert sd["fc.weight"].shape == (len(BACKGROUNDS), 16)


def test_same_seed_same_weights_and_other_seed_differs(tmp_path):
    r = tiny_recipe("moco")
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        pretrain(r, tmp_path / f"{name}.pth", seed=seed, progress=False)
    a, b, c = (_load(tmp_path / f"{n}.pth")["state_dict"] for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["module.encoder_q.conv1.weight"], c["module.encoder_q.conv1.weight"])


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    r = tiny_recipe("byol", steps=4, save_every=2)
    pretrain(r, tmp_path / "whole.pth", seed=1, progress=False)

    from probe.demo import objectives

    calls = {"n": 0}
    original = objectives.BYOL.after_step

    def crash_at_third_step(self, progress):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(self, progress)

    monkeypatch.setattr(objectives.BYOL, "after_step", crash_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        pretrain(r, tmp_path / "resumed.pth", seed=1, progress=False)
    assert (tmp_path / "resumed.pth.partial").exists() and not (tmp_path / "resumed.pth").exists()
    monkeypatch.setattr(objectives.BYOL, "after_step", original)
    pretrain(r, tmp_path / "resumed.pth", seed=1, progress=False)
    assert not (tmp_path / "resumed.pth.partial").exists()
    whole, resumed = _load(tmp_path / "whole.pth"), _load(tmp_path / "resumed.pth")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ProbeValueError, match="simclr, moco, byol, supervised, supervised_vit"):
        recipe("dino")
