"""Devices: what ``device="auto"`` means, checked before any work, and which device a model is on.

A low-level module like :mod:`probe.errors`: ``backbones`` and ``unsupervised`` import it too.
"""

from __future__ import annotations

import torch

from .errors import ParameterError

#: The device every command uses unless told otherwise: CUDA when present, else the CPU.
AUTO = "auto"


def resolve_device(device: str | torch.device, *, parameter: str = "device") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; any other name must be a device of this machine.

    Errors name ``parameter`` (a :class:`~probe.errors.ParameterError`): an unknown name, CUDA
    absent, or a CUDA index past the last GPU.
    """
    if str(device) == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(parameter, f"{device!r}: expected cpu, cuda, cuda:N or auto ({exc})") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(parameter, f"{device}: CUDA is not available on this machine (use cpu or auto)")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ParameterError(parameter, f"{device}: this machine has {count} CUDA device(s), "
                                            f"cuda:0..cuda:{count - 1}")
    return resolved


def model_device(model: torch.nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter or buffer; ``default`` (CPU) for a model without any."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return default if default is not None else torch.device("cpu")
