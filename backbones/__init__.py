"""Load self-supervised checkpoints in their native formats as feature extractors."""

from . import small_resnet  # noqa: F401  (registers the built-in small ResNet family)
from .registry import ArchSpec, create, get_arch, list_archs, load_plugins, register

__all__ = ["ArchSpec", "create", "get_arch", "list_archs", "load_plugins", "register"]
