"""Baselines through Captum (Grad-CAM, integrated gradients, saliency, input x gradient) and a
seeded random map. Each returns [N, H, W] for images [N, C, H, W]; LRP lives in ``relevance.py``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
import torch.nn as nn

from probe.errors import ProbeValueError

from .graph import Graph, Step
from .inputs import inference_mode, model_dtype
from .layers import StepKind
from .method import Method, MethodCall, Option
from .relevance import traced_facts

# steps between the last feature map and the classifier (a head may hold Linear/ReLU/Dropout layers)
_HEAD_KINDS = (StepKind.IDENTITY, StepKind.LINEAR, StepKind.RELU)
# steps that turn the feature map into vectors, and steps that may sit between the map and them
_TO_VECTORS = (StepKind.RESHAPE, StepKind.MEAN)
_POOLING = (StepKind.ADAPTIVE_AVGPOOL, StepKind.IDENTITY)


Attribute = Callable[[MethodCall, torch.Tensor], torch.Tensor]


def _in_eval_mode(attribute: Attribute) -> Callable[[MethodCall], torch.Tensor]:
    """A Captum method's run: the model in eval mode, the images in its dtype (Captum is imported on first use)."""

    def run(call: MethodCall) -> torch.Tensor:
        x = call.images.to(model_dtype(call.model, call.images.dtype))
        with inference_mode(call.model):
            return attribute(call, x)

    return run


def _gradcam(call: MethodCall, x: torch.Tensor) -> torch.Tensor:
    return gradcam(call.model, call.facts.structure, x, call.given_target(), **call.options)


def _integrated_gradients(call: MethodCall, x: torch.Tensor) -> torch.Tensor:
    # our own view of the images: Captum differentiates with respect to it
    return integrated_gradients(call.model, x.detach().requires_grad_(True), call.given_target(), **call.options)


def _saliency(call: MethodCall, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import Saliency

    return Saliency(call.model).attribute(x.detach().requires_grad_(True), target=call.target, abs=True).amax(1)


def _input_x_gradient(call: MethodCall, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import InputXGradient

    return InputXGradient(call.model).attribute(x.detach().requires_grad_(True), target=call.target).sum(1)


def _random(call: MethodCall) -> torch.Tensor:
    return random_maps(call.images, **call.options)


def gradcam(
    model: nn.Module, graph: Graph, x: torch.Tensor, targets: torch.Tensor, layer: str | None = None
) -> torch.Tensor:
    """Grad-CAM (ReLU of the gradient-weighted channel sum) on ``layer``, bilinearly upsampled to the image.

    Default layer: the last feature map before the classifier's global pooling (ResNet: the last
    block; VGG: the last max pool).
    """
    from captum.attr import LayerAttribution, LayerGradCam

    path = gradcam_layer(graph) if layer is None else layer
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise ProbeValueError(f"gradcam: the model has no module {path!r}") from None
    cam = LayerGradCam(model, module).attribute(x, target=targets, relu_attributions=True)
    if cam.dim() != 4:
        raise ProbeValueError(f"gradcam: layer {path!r} does not output a 4-D feature map")
    return LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")[:, 0]


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    n_steps: int = 50,
    internal_batch_size: int | None = None,
    baseline: float = 0.0,
) -> torch.Tensor:
    """Integrated gradients from a constant ``baseline`` image (in the model's input space), summed over channels."""
    from captum.attr import IntegratedGradients

    attr = IntegratedGradients(model).attribute(
        x,
        baselines=baseline,
        target=targets,
        n_steps=n_steps,
        internal_batch_size=internal_batch_size or x.shape[0],
    )
    return attr.sum(1)


def random_maps(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Uniform [0, 1) maps, one per image, seeded by ``seed`` and the image's content.

    The same image gives the same map with the same seed, alone or in any batch.
    """
    maps = []
    for image in x:
        digest = hashlib.blake2b(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes(), digest_size=8)
        generator = torch.Generator().manual_seed((int.from_bytes(digest.digest(), "little") ^ int(seed)) & (2**63 - 1))
        maps.append(torch.rand(tuple(image.shape[1:]), generator=generator))
    return torch.stack(maps).to(x.device)


def gradcam_layer(graph: Graph) -> str:
    """Path of the module whose output is the last feature map before the classifier's pooling."""
    value = graph.classifier_step().inputs[0]
    while True:  # back through the head to the step that turned the map into vectors
        step = graph.producer(value)
        if step is None:
            raise ProbeValueError("gradcam: found no 4-D feature map before the classifier; pass layer='module.path'")
        value = step.inputs[0]
        if step.kind in _TO_VECTORS:
            break
        if step.kind not in _HEAD_KINDS:
            raise ProbeValueError(f"gradcam: cannot find the feature map past {step.where}; pass layer='module.path'")
    step = graph.producer(value)
    while step is not None and step.kind in _POOLING:
        step = graph.producer(step.inputs[0])
    if step is None:
        raise ProbeValueError("gradcam: the classifier reads the image itself; pass layer='module.path'")
    return _module_returning(graph, step)


def _module_returning(graph: Graph, step: Step) -> str:
    """The innermost module, called once, whose forward returns ``step``'s output."""
    if step.module is not None and sum(s.module is step.module for s in graph.steps) == 1:
        return step.where
    scopes = [_scope_paths(s) for s in graph.steps]
    for path in reversed(_scope_paths(step)):
        inside = [i for i, paths in enumerate(scopes) if path in paths]
        if inside[-1] == step.index and inside == list(range(inside[0], inside[-1] + 1)) and path:
            return path
    raise ProbeValueError(f"gradcam: no module returns the feature map of {step.where}; pass layer='module.path'")


def _scope_paths(step: Step) -> list[str]:
    stack = (step.node.meta.get("nn_module_stack") if step.node is not None else None) or {}
    return [path for path, _ in stack.values()]


GRADCAM = Method(
    "gradcam",
    _in_eval_mode(_gradcam),
    options=(Option("layer"),),
    inspect=traced_facts,
    description="Grad-CAM (Captum) on the last feature map before the classifier's pooling",
)
INTEGRATED_GRADIENTS = Method(
    "integrated_gradients",
    _in_eval_mode(_integrated_gradients),
    options=(Option("n_steps", 50), Option("internal_batch_size"), Option("baseline", 0.0)),
    description="integrated gradients (Captum) from a constant baseline image",
)
SALIENCY = Method("saliency", _in_eval_mode(_saliency), description="max over channels of |d logit / d pixel| (Captum)")
INPUT_X_GRADIENT = Method("input_x_gradient", _in_eval_mode(_input_x_gradient), description="input x gradient (Captum)")
RANDOM = Method(
    "random",
    _random,
    options=(Option("seed", 0),),
    needs_target=False,
    description="uniform noise seeded by the image's content: the chance level",
)
