"""ViT maps beyond the published code: batches, register tokens, LayerScale, pre-norm and QuickGELU, average
pooling, fused attention, the pipeline's ProbeModel(Backbone(vit), Linear), and clear errors for what has no
rule. The oracle for the new cases is the literal transcription in vit_literal.py (checked against the
published maps in test_vit_reference.py); all comparisons in float64, to a relative 1e-6 of each map."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from timm.layers import SwiGLUPacked
from timm.models.vision_transformer import VisionTransformer

import backbones
from probe.attribution import UnsupportedModelError
from probe.attribution.transformer import VIT_METHODS, patch_maps, to_input_size, vit_maps
from probe.errors import ProbeError, ProbeTypeError, ProbeValueError
from tests.support.vit_literal import literal_map
from tests.support.vit_models import as_backbone, recipe_vit
from unsupervised import ProbeModel

METHODS = list(VIT_METHODS)
TINY = {"depth": 3, "embed_dim": 48, "num_heads": 3, "patch_size": 16, "img_size": 64}
TARGETS = [1, 7, 4]


def tiny(seed: int = 3, **kwargs) -> nn.Module:
    return recipe_vit(seed=seed, **{**TINY, **kwargs}).double()


def images(model: nn.Module, n: int = 3, seed: int = 1) -> torch.Tensor:
    size = model.patch_embed.img_size
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def close(ours: torch.Tensor, theirs: torch.Tensor, tol: float = 1e-6) -> bool:
    """Every map within ``tol`` of its own largest magnitude."""
    scale = theirs.flatten(1).abs().amax(1).clamp(min=1e-300)
    return bool(((ours - theirs).flatten(1).abs().amax(1) / scale).max() < tol)


def literal(model: nn.Module, x: torch.Tensor, method: str, start_layer: int = 0, head: nn.Module | None = None):
    head = model.head if head is None else head
    return torch.stack(
        [literal_map(model, head, x[i : i + 1], t, method, start_layer) for i, t in enumerate(TARGETS[: len(x)])]
    )


def start_layers(method: str) -> list[int]:
    return [0, 1] if "start_layer" in VIT_METHODS[method] else [0]


def opts(method: str, start_layer: int) -> dict:
    return {"start_layer": start_layer} if "start_layer" in VIT_METHODS[method] else {}


VARIANTS = {
    # DINOv2 with registers: class token, 4 registers, then the patches; position embeddings on the patches only
    "registers": {"reg_tokens": 4, "no_embed_class": True, "patch_size": 14, "img_size": 56},
    # DINOv2's LayerScale; the recipe draws gammas of both signs, where folding differs from ignoring them
    "layer_scale": {"init_values": 1e-5},
    # CLIP: a LayerNorm before the blocks, QuickGELU in the MLPs
    "clip": {"pre_norm": True, "act_layer": "quick_gelu"},
    # MAE fine-tuning: mean of the patch tokens, then fc_norm (no final norm)
    "avg_pool": {"global_pool": "avg"},
    "avg_pool_registers": {"global_pool": "avg", "reg_tokens": 2, "init_values": 1e-5},
}


def _last_attention(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """The last block's attention probabilities [N, heads, tokens, tokens], read by a hook on an unfused forward."""
    recorded = {}
    attn = model.blocks[-1].attn
    handle = attn.attn_drop.register_forward_hook(lambda m, a, out: recorded.update(a=out))
    try:
        attn.fused_attn = False
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        attn.fused_attn = True
    return recorded["a"]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("method", METHODS)
def test_beyond_the_published_code_matches_the_literal_specification(variant, method):
    model = tiny(**VARIANTS[variant])
    x = images(model)
    for start_layer in start_layers(method):
        ours = patch_maps(model, x, torch.tensor(TARGETS), method, **opts(method, start_layer))
        assert close(ours, literal(model, x, method, start_layer)), (variant, method, start_layer)


def test_register_columns_are_dropped():
    """With registers the map covers exactly the patch tokens: its values are the columns after the
    class token and the registers (the published [0, 1:] slice would keep the registers)."""
    model = tiny(**VARIANTS["registers"])
    x = images(model, 1)
    grid = patch_maps(model, x, torch.tensor([1]), "raw_attention")
    assert grid.shape == (1, 4, 4)
    cls_row = _last_attention(model, x)[0].mean(0)[0]
    assert torch.allclose(grid.flatten(), cls_row[5:], rtol=1e-12, atol=0)


def folded_copy(model: nn.Module) -> nn.Module:
    """The same function without LayerScale: each gamma folded into the Linear before it."""
    kwargs = {**TINY, "init_values": None}
    folded = recipe_vit(seed=3, **kwargs).double()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("gamma")}
    for i, block in enumerate(model.blocks):
        for linear, scale in (("attn.proj", block.ls1.gamma), ("mlp.fc2", block.ls2.gamma)):
            state[f"blocks.{i}.{linear}.weight"] = scale[:, None] * state[f"blocks.{i}.{linear}.weight"]
            state[f"blocks.{i}.{linear}.bias"] = scale * state[f"blocks.{i}.{linear}.bias"]
    folded.load_state_dict(state)
    return folded.eval()


@pytest.mark.parametrize("method", METHODS)
def test_layer_scale_is_folded_into_the_linear_before_it(method):
    model = tiny(init_values=1e-5)
    gammas = torch.cat([b.ls1.gamma for b in model.blocks] + [b.ls2.gamma for b in model.blocks])
    assert (gammas < 0).any() and (gammas > 0).any()
    x = images(model)
    ours = patch_maps(model, x, torch.tensor(TARGETS), method)
    assert close(ours, patch_maps(folded_copy(model), x, torch.tensor(TARGETS), method), 1e-8)


def test_average_pooling_reads_the_mean_of_the_patch_rows():
    """For a mean-pooled head the classifier reads every patch token equally: the raw-attention map is the
    mean over the patch tokens' rows of the head-averaged last attention (not the class token's row)."""
    model = tiny(global_pool="avg")
    x = images(model, 1)
    attention = _last_attention(model, x)[0].mean(0)
    expected = attention[1:, 1:].mean(0)
    grid = patch_maps(model, x, torch.tensor([0]), "raw_attention")
    assert torch.allclose(grid.flatten(), expected, rtol=1e-12, atol=0)
    assert not torch.allclose(grid.flatten(), attention[0, 1:], rtol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_a_batch_gives_the_maps_of_its_images_one_by_one(method):
    model = tiny(init_values=1e-5)
    x = images(model, 3)
    for start_layer in start_layers(method):
        batch = patch_maps(model, x, torch.tensor(TARGETS), method, **opts(method, start_layer))
        alone = torch.cat(
            [
                patch_maps(model, x[i : i + 1], torch.tensor([t]), method, **opts(method, start_layer))
                for i, t in enumerate(TARGETS)
            ]
        )
        assert close(batch, alone, 1e-9)


def test_float32_batches_match_their_images_one_by_one():
    model = tiny().float()
    x = images(model, 3).float()
    for method in ("generic_attention", "attention_rollout", "raw_attention"):
        batch = patch_maps(model, x, torch.tensor(TARGETS), method)
        alone = torch.cat([patch_maps(model, x[i : i + 1], torch.tensor([t]), method) for i, t in enumerate(TARGETS)])
        assert close(batch.double(), alone.double(), 1e-4)


def test_default_target_is_the_top_class_and_rank_picks_others():
    model = tiny()
    x = images(model, 2)
    with torch.no_grad():
        order = model(x).argsort(1, descending=True)
    for method in METHODS:
        assert torch.equal(patch_maps(model, x, None, method), patch_maps(model, x, order[:, 0], method))
        assert torch.equal(patch_maps(model, x, None, method, rank=2), patch_maps(model, x, order[:, 2], method))


def test_maps_at_input_size_are_the_grid_upsampled():
    model = tiny(patch_size=14, img_size=56)
    x = images(model, 2)
    maps = vit_maps(model, x, torch.tensor([1, 2]), "generic_attention")
    grid = patch_maps(model, x, torch.tensor([1, 2]), "generic_attention")
    assert maps.shape == (2, 56, 56) and maps.dtype == torch.float32
    expected = torch.nn.functional.interpolate(grid[:, None], scale_factor=14, mode="bilinear", align_corners=False)
    assert torch.allclose(maps.double(), expected[:, 0], rtol=1e-6, atol=1e-7 * grid.abs().max().item())
    assert torch.equal(maps, to_input_size(grid, (56, 56)).float())


def probe_model(model: nn.Module) -> ProbeModel:
    """The pipeline's structure: a headless ViT wrapped in a Backbone, then a Linear head outside it."""
    headless = copy.deepcopy(model)
    headless.reset_classifier(0)
    return ProbeModel(as_backbone(headless, headless.num_features, 64), copy.deepcopy(model.head))


@pytest.mark.parametrize("pool", ["token", "avg"])
@pytest.mark.parametrize("method", METHODS)
def test_probe_model_gives_the_maps_of_the_vit_with_its_own_head(method, pool):
    model = tiny(global_pool=pool)
    wrapped = probe_model(model)
    x = images(model, 2)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), model(x))
    ours = patch_maps(wrapped, x, torch.tensor([1, 7]), method)
    assert close(ours, patch_maps(model, x, torch.tensor([1, 7]), method), 1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_a_vit_with_a_projection_head_inside_a_probe_model(method):
    """CLIP's image tower is a ViT whose own Linear head projects the features (zero bias); the pipeline
    puts its pseudo-class Linear after it. Both Linears get the z+ rule, the outer one first."""
    model = tiny(pre_norm=True, act_layer="quick_gelu", num_classes=16)
    model.head.bias.data.zero_()
    outer = nn.Linear(16, 5).double()
    wrapped = ProbeModel(as_backbone(model, 16, 64, arch="clip_vit"), outer)
    x = images(model, 2)
    ours = patch_maps(wrapped, x, torch.tensor([1, 3]), method)
    expected = torch.stack(
        [literal_map(model, [model.head, outer], x[i : i + 1], t, method) for i, t in enumerate([1, 3])]
    )
    assert close(ours, expected)


def test_fused_attention_is_turned_off_for_the_call_and_restored():
    model = tiny()
    for block in model.blocks:
        block.attn.fused_attn = True
    plain = copy.deepcopy(model)
    for block in plain.blocks:
        block.attn.fused_attn = False
    x = images(model, 2)
    for method in METHODS:
        assert torch.equal(
            patch_maps(model, x, torch.tensor([1, 7]), method), patch_maps(plain, x, torch.tensor([1, 7]), method)
        )
        assert all(block.attn.fused_attn for block in model.blocks)


def test_maps_inside_inference_mode_and_no_grad_are_the_same():
    model = tiny()
    x = images(model, 2)
    for method in METHODS:
        expected = patch_maps(model, x, torch.tensor([1, 7]), method)
        with torch.no_grad():
            assert torch.equal(patch_maps(model, x, torch.tensor([1, 7]), method), expected)
        with torch.inference_mode():
            inferred = x.clone()  # an inference tensor
            assert torch.equal(patch_maps(model, inferred, torch.tensor([1, 7]), method), expected)


def test_training_mode_models_are_explained_with_inference_semantics():
    noisy = tiny(attn_drop_rate=0.5, drop_path_rate=0.5, proj_drop_rate=0.5)
    x = images(noisy, 2)
    reference = {m: patch_maps(noisy, x, torch.tensor([1, 7]), m) for m in METHODS}
    noisy.train()
    for method in METHODS:
        assert torch.equal(patch_maps(noisy, x, torch.tensor([1, 7]), method), reference[method])
    assert all(module.training for module in noisy.modules())


@pytest.mark.parametrize(
    "where,replacement",
    [
        ("blocks.1.mlp.act", lambda b: nn.SiLU()),
        ("blocks.0.attn.q_norm", lambda b: nn.LayerNorm(16)),
        ("blocks.2.mlp", lambda b: SwiGLUPacked(48, 96)),
        ("fc_norm", lambda b: nn.BatchNorm1d(48)),
    ],
)
def test_a_module_without_a_rule_is_named(where, replacement):
    model = tiny()
    parent, name = where.rsplit(".", 1) if "." in where else ("", where)
    module = replacement(model).double()
    model.get_submodule(parent).add_module(name, module) if parent else setattr(model, name, module)
    wrapped = probe_model(model)
    kind = f"{type(module).__module__}.{type(module).__qualname__}"
    with pytest.raises(UnsupportedModelError, match=f"'backbone.model.{where}' \\({kind}\\)"):
        patch_maps(wrapped, images(model, 1), None, "transformer_attribution")


def test_methods_without_relevance_rules_work_on_other_modules():
    """Generic attention, rollout and raw attention need no LRP rule: an unusual activation is fine."""
    model = tiny()
    model.blocks[1].mlp.act = nn.SiLU()
    x = images(model, 2)
    for method in ("generic_attention", "attention_rollout", "raw_attention"):
        ours = patch_maps(model, x, torch.tensor(TARGETS[:2]), method)
        assert close(ours, literal(model, x, method))


def test_attention_without_probabilities_is_refused():
    from timm.layers import DiffAttention

    model = tiny()
    model.blocks[2].attn = DiffAttention(48, num_heads=3, depth=2).double()
    with pytest.raises(UnsupportedModelError, match=r"'blocks\.2\.attn' is timm\.layers\.diff_attention\.DiffAtt"):
        patch_maps(model, images(model, 1), None, "raw_attention")


@pytest.mark.parametrize(
    "build,message",
    [
        (
            lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 3)),
            "generic_attention explains timm VisionTransformers; Sequential holds none",
        ),
        (lambda: nn.ModuleDict({"a": tiny(), "b": tiny()}), "holds several: 'a', 'b'"),
        (lambda: VisionTransformer(**TINY, global_pool="map"), "global_pool='map'"),
        (
            lambda: nn.Sequential(tiny(num_classes=0), nn.ReLU(), nn.Linear(48, 5)),
            "does not read the output of the ViT",
        ),
        (lambda: nn.Sequential(tiny(), nn.Softmax(dim=1)), "output is not the output of its classifier"),
        (lambda: nn.Sequential(tiny(num_classes=0), nn.Linear(48, 48), nn.Linear(48, 5)), "several Linears"),
    ],
)
def test_other_structures_are_refused(build, message):
    model = build().double()
    with pytest.raises(ProbeError, match=message):
        patch_maps(model, torch.randn(1, 3, 64, 64, dtype=torch.float64), None, "generic_attention")


def test_bad_options_are_refused():
    model = tiny()
    x = images(model, 1)
    with pytest.raises(ProbeValueError, match="unknown ViT attribution method 'lrp'"):
        patch_maps(model, x, None, "lrp")
    with pytest.raises(ProbeTypeError, match="got unknown option.*start_layer.*its options: none"):
        patch_maps(model, x, None, "generic_attention", start_layer=1)
    with pytest.raises(ProbeValueError, match=r"start_layer must be in \[0, 2\]"):
        patch_maps(model, x, None, "transformer_attribution", start_layer=3)
    with pytest.raises(ProbeTypeError, match="start_layer must be an int"):
        patch_maps(model, x, None, "attention_rollout", start_layer=True)


def test_the_registered_vit_architectures_are_supported():
    """The project's own ViT backbones (timm, headless, class-token pooling) in a ProbeModel."""
    vit = backbones.create("vit_small_patch16", img_size=32)
    vit.blocks = vit.blocks[:2]  # two blocks keep the test fast
    model = ProbeModel(as_backbone(vit, 384, 32), nn.Linear(384, 4))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in METHODS:
        maps = vit_maps(model, x, None, method)
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_bad_images_and_targets_are_refused():
    model = tiny()
    x = images(model, 2)
    with pytest.raises(ProbeValueError, match="images are 32x32 but the ViT 'model' was built for 64x64"):
        patch_maps(model, x[..., :32, :32], None, "raw_attention")
    with pytest.raises(ProbeValueError, match="4-D tensor"):
        patch_maps(model, x[0], None, "raw_attention")
    with pytest.raises(ProbeValueError, match="1 channels; the ViT expects 3"):
        patch_maps(model, x[:, :1], None, "raw_attention")
    with pytest.raises(ProbeTypeError, match="floating point"):
        patch_maps(model, x.long(), None, "raw_attention")
    with pytest.raises(ProbeValueError, match=r"class ids in \[0, 9\]"):
        patch_maps(model, x, torch.tensor([0, 10]), "generic_attention")
    with pytest.raises(ProbeTypeError, match="integer tensor of 2 class ids"):
        patch_maps(model, x, torch.tensor([0]), "generic_attention")
    with pytest.raises(ProbeValueError, match=r"rank must be an int in \[0, 9\]"):
        patch_maps(model, x, None, "generic_attention", rank=10)
