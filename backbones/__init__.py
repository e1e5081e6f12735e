"""Load self-supervised checkpoints in their native formats as feature extractors.

``load(path)`` detects the checkpoint family and the architecture, strips the family's prefix,
drops heads, loads strictly and returns a :class:`Backbone`; ``inspect(path)`` reports the same
without loading. Files are read with ``torch.load(weights_only=True)`` only.
"""

from . import archs  # noqa: F401  (registers the built-in architectures)
from .backbone import Backbone, Source, random_like
from .errors import (
    ArchitectureError,
    BackboneWarning,
    CheckpointError,
    FormatDetectionError,
    UnknownFormatError,
    UnsafeCheckpointError,
)
from .formats import FormatSpec, list_formats, register_format
from .loader import inspect, load
from .preprocessing import CIFAR, IMAGENET, RAW, Normalization, Preprocessing
from .registry import ArchSpec, Detection, create, get_arch, list_archs, load_plugins, register
from .report import CheckpointReport

__all__ = [
    "CIFAR",
    "IMAGENET",
    "RAW",
    "ArchSpec",
    "ArchitectureError",
    "Backbone",
    "BackboneWarning",
    "CheckpointError",
    "CheckpointReport",
    "Detection",
    "FormatDetectionError",
    "FormatSpec",
    "Normalization",
    "Preprocessing",
    "Source",
    "UnknownFormatError",
    "UnsafeCheckpointError",
    "create",
    "get_arch",
    "inspect",
    "list_archs",
    "list_formats",
    "load",
    "load_plugins",
    "random_like",
    "register",
    "register_format",
]
