"""Convolutions with a Conv2d module's geometry: forward, input-VJP, and the all-ones forward.

1×1 convolutions (stride any, no padding, no groups) run as plain matrix products, which on
CPU are several times faster than the generic convolution kernels in both directions.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvGeometry:
    """Stride, padding, dilation and groups of one Conv2d, and the operations that use them."""

    def __init__(self, module: nn.Conv2d, padding: tuple[int, int]) -> None:
        self.stride = tuple(module.stride)
        self.padding = padding
        self.dilation = tuple(module.dilation)
        self.groups = module.groups
        self.kernel = tuple(module.kernel_size)
        self.pointwise = self.kernel == (1, 1) and padding == (0, 0) and self.groups == 1
        self._flipped: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(w) -> (w, flipped w)

    def conv(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """conv2d(x, w) with this geometry."""
        if not self.pointwise:
            return F.conv2d(x, w, bias, self.stride, self.padding, self.dilation, self.groups)
        if self.stride != (1, 1):
            x = x[:, :, :: self.stride[0], :: self.stride[1]]
        out = _pointwise(x, w.view(w.shape[0], -1))
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1))

    def conv_t(self, s: torch.Tensor, w: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        """The VJP of ``conv(., w)`` for an input of shape ``in_shape`` (batch taken from ``s``)."""
        if self.pointwise:
            small = _pointwise(s, w.view(w.shape[0], -1).t())
            if tuple(in_shape[2:]) == tuple(s.shape[2:]):
                return small
            out = s.new_zeros(small.shape[:2] + tuple(in_shape[2:]))
            out[:, :, :: self.stride[0], :: self.stride[1]] = small
            return out
        flip_pad = [self.dilation[i] * (self.kernel[i] - 1) - self.padding[i] for i in range(2)]
        if self.stride == (1, 1) and self.groups == 1 and min(flip_pad) >= 0:
            # stride 1: the VJP is a plain convolution with the flipped, transposed kernel (faster on CPU)
            return F.conv2d(s, self._flip(w), None, 1, flip_pad, self.dilation)
        reach = [self.dilation[i] * (self.kernel[i] - 1) + 1 for i in range(2)]  # the kernel's span
        out_pad = [
            in_shape[2 + i] - ((s.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i] + reach[i]) for i in range(2)
        ]
        return F.conv_transpose2d(s, w, None, self.stride, self.padding, out_pad, self.groups, self.dilation)

    def _flip(self, w: torch.Tensor) -> torch.Tensor:
        """The kernel flipped in space with in/out channels swapped, made once per weight tensor."""
        if id(w) not in self._flipped:
            self._flipped[id(w)] = (w, w.flip(2, 3).transpose(0, 1).contiguous())
        return self._flipped[id(w)][1]

    def ones_conv(self, w: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        """conv(ones(1, C, H, W), w) -> [1, K, H', W'], the same for every sample.

        Separable: the ones image only decides which kernel taps fall inside the zero padding.
        """
        inside = [self._taps_inside(i, in_shape[2 + i], w) for i in range(2)]
        return torch.einsum("ia,kab,jb->kij", inside[0], w.sum(1), inside[1]).unsqueeze(0)

    def _taps_inside(self, dim: int, size: int, w: torch.Tensor) -> torch.Tensor:
        span = self.dilation[dim] * (self.kernel[dim] - 1) + 1
        out_size = (size + 2 * self.padding[dim] - span) // self.stride[dim] + 1
        pos = (
            torch.arange(out_size, device=w.device)[:, None] * self.stride[dim]
            + torch.arange(self.kernel[dim], device=w.device)[None, :] * self.dilation[dim]
            - self.padding[dim]
        )
        return ((pos >= 0) & (pos < size)).to(w.dtype)


def _pointwise(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The 1×1 convolution ``out[n, k] = sum_c m[k, c] x[n, c]`` as a batched matrix product."""
    n, c, h, w = x.shape
    return torch.matmul(m, x.reshape(n, c, h * w)).view(n, -1, h, w)


def numeric_padding(module: nn.Conv2d) -> tuple[int, int]:
    """The module's padding as two ints (the trace refuses an asymmetric padding='same')."""
    pad = module.padding
    if not isinstance(pad, str):
        return (int(pad[0]), int(pad[1]))
    if pad == "valid":
        return (0, 0)
    total = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)]
    return (total[0] // 2, total[1] // 2)
