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
            raise ParameterError(
                parameter, f"{device}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}"
            )
    return resolved


def model_device(model: torch.nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter or buffer; ``default`` (CPU) for a model without any."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return default if default is not None else torch.device("cpu")


def to_device(tensor: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; from the CPU to a GPU through pinned memory, without waiting for the copy
    (the next kernel on the same stream waits for it, the host does not)."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def batch_for_memory(free_bytes: int, per_image_bytes: float, *, share: float = 0.7, most: int = 1024) -> int:
    """The largest batch whose images, at ``per_image_bytes`` each (measured), fit in ``share`` of
    ``free_bytes``; between 1 and ``most`` (a GPU's free memory can be shared with other processes)."""
    if free_bytes < 0 or per_image_bytes < 0 or not 0 < share <= 1 or most < 1:
        raise ValueError(
            f"batch_for_memory: bad arguments free_bytes={free_bytes}, per_image_bytes={per_image_bytes}, "
            f"share={share}, most={most}"
        )
    if per_image_bytes == 0:
        return most
    return max(1, min(most, int(free_bytes * share // per_image_bytes)))
