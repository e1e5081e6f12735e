"""Built-in architectures: torchvision-key ResNets, the small ResNet, the SimCLR v2 converter's ResNet, timm ViTs."""

from . import resnets, simclr_v2, small_resnet, vit  # noqa: F401  (importing registers them)
