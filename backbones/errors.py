"""Error and warning types of the backbones package."""

from __future__ import annotations

from probe.errors import ProbeError


class CheckpointError(ProbeError, ValueError):
    """A checkpoint cannot be read, recognised or loaded as asked; the message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """Reading the file would need arbitrary code to run (a pickle global outside the allowlist, a dill/JAX pickle)."""


class FormatDetectionError(CheckpointError):
    """The checkpoint format is unknown or ambiguous; the message lists the candidates and their evidence."""


class UnknownFormatError(FormatDetectionError):
    """No checkpoint format recognises the file (as opposed to several claiming it)."""


class ArchitectureError(CheckpointError):
    """The weights do not fit the architecture (detected or requested); the message lists the keys."""


class BackboneWarning(UserWarning):
    """A checkpoint loaded but looks suspicious (e.g. features without variance on a probe batch)."""
