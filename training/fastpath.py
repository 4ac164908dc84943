"""The fused forward of a DSSC block: the same function as running its layers one by one (to
float rounding), in fewer and cheaper passes over memory. Training time goes to the first
block's long, narrow activations (3,000 samples x 4 channel rows x 1-8 features), so what counts
is how many full-length tensors are written and read back, forward and backward.

Each rewrite below is exact in real arithmetic; only float rounding (summation order) differs:

- main unit, depthwise (1, 3) then pointwise: ``pw(dw(x))[o] = sum_i pw[o, i] *
  sum_k dw[i, k] * x_i[t + k - 1] + b[o]``, i.e. one (1, 3) convolution with the weight
  ``pw[o, i] * dw[i, k]`` (rebuilt from the two parameters at every call, so that gradients
  flow to them): one oneDNN convolution instead of three shifted products and a matrix product.
- main unit, ReLU then max pooling: ReLU is non-decreasing, so ``max(relu(a), relu(b)) =
  relu(max(a, b))`` bit for bit; pooling first halves the tensor the ReLU reads and writes.
- shortcut stream, depthwise k=1 stride 2 -> pointwise -> depthwise k=1 stride 2 -> pointwise:
  every step is linear and per sample, so the stream is ``M @ x[..., ::4] + c`` with
  ``M = (pw2 * dw2) @ (pw1 * dw1)`` and ``c = (pw2 * dw2) @ b1 + b2`` (``a[::2][::2] = a[::4]``):
  one small matrix product on a quarter of the samples instead of four layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def observed(block: nn.Module) -> bool:
    """Whether any layer of ``block`` is hooked (layer counts) or has its forward replaced
    (`generic_kernels`, for export): then the layers must run one by one, as written."""
    return any(
        m._forward_hooks or m._forward_pre_hooks or "forward" in m.__dict__ for m in block.modules()
    )


def main_unit(unit: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """depthwise k=3 -> pointwise -> BatchNorm -> ReLU -> MaxPool 2/2 (ceil) of a MainUnit."""
    dw, pw, bn, _, _ = unit
    cin = dw.in_channels
    weight = pw.weight.view(-1, cin, 1, 1) * dw.weight.view(1, cin, 1, 3)
    z = F.conv2d(x, weight, pw.bias, padding=(0, 1))
    return torch.relu(F.max_pool2d(bn(z), (1, 2), (1, 2), ceil_mode=True))


def shortcut(units: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The two ShortcutUnits (depthwise k=1 stride 2 -> pointwise, twice) as one linear map."""
    (dw1, pw1), (dw2, pw2) = units
    a1 = pw1.weight.flatten(1) * dw1.weight.view(1, -1)
    a2 = pw2.weight.flatten(1) * dw2.weight.view(1, -1)
    m, c = a2 @ a1, a2 @ pw1.bias + pw2.bias
    x4 = x[..., ::4]
    b, cin, h, t = x4.shape
    y = torch.matmul(m, x4.reshape(b, cin, h * t)) + c.view(1, -1, 1)
    return y.view(b, -1, h, t)


def dssc(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """main stream + shortcut stream of a DSSC block (before its dropout)."""
    h = main_unit(block.main[1], main_unit(block.main[0], x))
    return h + shortcut(block.shortcut, x)
