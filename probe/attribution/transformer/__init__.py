"""Attribution maps for timm Vision Transformers: transformer attribution, generic attention, attention
rollout and raw attention, on unmodified models (see docs/ATTRIBUTION.md, "Vision Transformers")."""

from .methods import VIT_METHODS, patch_maps, to_input_size, vit_maps

__all__ = ["VIT_METHODS", "patch_maps", "to_input_size", "vit_maps"]
