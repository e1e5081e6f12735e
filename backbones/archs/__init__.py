"""Built-in architectures: torchvision ResNets and VGGs, small and lightly ResNets, SimCLR v2 ResNets, timm ViTs,
CLIP towers."""

from . import clip, lightly_resnet, resnets, simclr_v2, small_resnet, vgg, vit  # noqa: F401  (importing registers them)
