"""Built-in architectures: torchvision-key ResNets, the small and SimCLR v2 ResNets, timm ViTs, CLIP towers."""

from . import clip, resnets, simclr_v2, small_resnet, vit  # noqa: F401  (importing registers them)
