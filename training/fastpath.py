"""The fused DSSC block, forward and backward: the same function as running its layers one by
one (to float rounding), in fewer and cheaper passes over memory. Training time goes to the first
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
- main unit with one input feature (a first block): BatchNorm's batch statistics of
  ``z = w @ taps + b`` are ``w @ mean(taps) + b`` and ``w @ cov(taps) @ w^T``, from the three
  taps' sums and Gram matrix, so the normalisation folds into the weights and the output is
  written once, already normalised, never read back for statistics (`_first_unit_normalised`).
- backward passes of their own where torch's are slow for these shapes: the (1, 3)
  convolution's (`_ConvK3`), pooling with ReLU (`_PoolRelu`, `_PoolReluPairs`) and dropout's
  (`_Dropout`, whose mask is drawn with torch.rand).
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


def _conv_weight_grad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The gradient of a (1, 3) 'same' convolution's weight, (cout, cin, 1, 3), from its input
    x (B, cin, H, T) and output gradient g (B, cout, H, T): for tap k, the sum over positions of
    g[t] x[t + k - 1]. Rows and time are flattened, so each tap is one batched matrix product
    over H * T positions on a shifted view (no copies); the flat shift pairs the first sample
    of a row with the last of the row before (and back), and those few terms are taken out."""
    b, cin, h, t = x.shape
    xf, gf = x.reshape(b, cin, h * t), g.reshape(b, -1, h * t)
    taps = [
        torch.bmm(gf[..., 1:], xf[..., :-1].transpose(1, 2)).sum(0),  # x[t - 1]
        torch.bmm(gf, xf.transpose(1, 2)).sum(0),  # x[t]
        torch.bmm(gf[..., :-1], xf[..., 1:].transpose(1, 2)).sum(0),  # x[t + 1]
    ]
    if h > 1:
        taps[0] -= torch.einsum("boh,bih->oi", g[:, :, 1:, 0], x[:, :, :-1, -1])
        taps[2] -= torch.einsum("boh,bih->oi", g[:, :, :-1, -1], x[:, :, 1:, 0])
    return torch.stack(taps, -1).unsqueeze(2)


class _ConvK3(torch.autograd.Function):
    """(1, 3) convolution, stride 1, one zero each side, with bias: oneDNN's forward, and a
    backward of two cheap passes (oneDNN's own backward is slow for these few channels): the
    input gradient is the convolution of g with the weight transposed and flipped, the weight
    gradient `_conv_weight_grad`."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, bias, padding=(0, 1))

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        g = g.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = F.conv2d(g, weight.transpose(0, 1).flip(-1).contiguous(), padding=(0, 1))
        if ctx.needs_input_grad[1]:
            gw = _conv_weight_grad(x.contiguous(), g)
        if ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb


def _pool_relu(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """relu(max(a, b)), and 1.0 where a won (it does on a tie, as in torch's max pooling), else
    0.0: a float mask, as float products are the fast ones."""
    y = torch.maximum(a, b)
    if a.stride(-1) == 1:
        first = torch.empty_like(y)
        torch.ge(a, b, out=first)
    else:  # every other sample: a comparison into floats is 4x slower than into bools
        first = torch.ge(a, b).to(y.dtype)
    return y.clamp_min_(0), first


def _unpool(g, y, first, shape_of, side):
    """The backward of `_pool_relu`: ReLU's own backward of g, then g to the sample that won
    and 0 to the other, written into a new tensor of shape ``shape_of(g.shape)`` whose views
    ``side(gz, 0)`` and ``side(gz, 1)`` are the first and the second samples."""
    g = torch.ops.aten.threshold_backward(g, y, 0)
    gz = g.new_empty(shape_of(g.shape))
    torch.mul(g, first, out=side(gz, 0))
    torch.sub(g, side(gz, 0), out=side(gz, 1))  # exact: g where the second won, else 0
    return gz


class _PoolRelu(torch.autograd.Function):
    """ReLU of max pooling 2/2 along time, ceil mode (an odd last sample is a window of its
    own)."""

    @staticmethod
    def forward(ctx, z):
        n = z.shape[-1]
        if n % 2:
            z = F.pad(z, (0, 1), value=float("-inf"))
        y, first = _pool_relu(z[..., 0::2], z[..., 1::2])
        ctx.save_for_backward(y, first)
        ctx.n = n
        return y

    @staticmethod
    def backward(ctx, g):
        y, first = ctx.saved_tensors
        gz = _unpool(g, y, first, lambda shape: (*shape, 2), lambda gz, i: gz[..., i])
        return gz.flatten(-2)[..., : ctx.n]


class _PoolReluPairs(torch.autograd.Function):
    """ReLU of the maximum of z[:, :, 0] and z[:, :, 1], for z (B, C, 2, ...) holding the even
    and the odd samples of a sequence in two planes: max pooling 2/2 without interleaved reads
    or writes, forward or backward."""

    @staticmethod
    def forward(ctx, z):
        y, first = _pool_relu(z[:, :, 0], z[:, :, 1])
        ctx.save_for_backward(y, first)
        return y

    @staticmethod
    def backward(ctx, g):
        y, first = ctx.saved_tensors
        return _unpool(
            g, y, first, lambda shape: (*shape[:2], 2, *shape[2:]), lambda gz, i: gz[:, :, i]
        )


class _Dropout(torch.autograd.Function):
    """Dropout with its mask drawn by torch.rand in float32 whatever x's type, so that the
    masks depend on the seed alone (u >= p keeps; u's 2^-24 steps make the keep probability
    1 - p to 3e-8); twice as fast on a CPU as torch's Bernoulli draws. The mask, scaled by
    1 / (1 - p), is kept for the backward. (Under torch.compile the draws are inductor's own,
    as for any random op there: other masks than eager's from the same seed.)"""

    @staticmethod
    def forward(ctx, x, p):
        keep = torch.rand(x.shape, dtype=torch.float32, device=x.device)
        torch.ge(keep, p, out=keep)
        keep = keep.to(x.dtype).mul_(1 / (1 - p))
        ctx.save_for_backward(keep)
        return x * keep

    @staticmethod
    def backward(ctx, g):
        (keep,) = ctx.saved_tensors
        return g * keep, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """What nn.Dropout computes, with `_Dropout`'s draws."""
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    return _Dropout.apply(x, p)


def _first_unit_normalised(unit: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm(conv(x)) of a main unit with one input feature, without the convolution's
    output ever being read back. Its output is z = w @ taps + b at every position, where taps
    are x's three shifted copies, so its batch mean and variance per feature follow from the
    taps' sums and 3 x 3 Gram matrix (w @ mean, w @ cov @ w^T), and the normalisation folds
    into the weights: a single matrix product writes the normalised output. BatchNorm's running
    statistics are updated as torch updates them (momentum, unbiased variance)."""
    dw, pw, bn, _, _ = unit
    b, _, h, t = x.shape
    w = pw.weight.view(-1, 1) * dw.weight.view(1, 3)
    xp = F.pad(x, (1, 1))
    # the taps of the even samples, then those of the odd ones: (B, 3, 2, H, T / 2)
    taps = torch.stack([xp[..., k + p : k + t : 2] for k in range(3) for p in (0, 1)], 1)
    taps = taps.view(b, 3, h * t)
    if bn.training:
        n = b * h * t
        mean_taps = taps.sum((0, 2)) / n
        cov = torch.bmm(taps, taps.transpose(1, 2)).sum(0) / n - torch.outer(mean_taps, mean_taps)
        mean = w @ mean_taps + pw.bias
        var = ((w @ cov) * w).sum(1).clamp_min(0)
        with torch.no_grad():
            m = bn.momentum
            bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
            bn.running_var.mul_(1 - m).add_(var * (n / (n - 1)), alpha=m)
            bn.num_batches_tracked.add_(1)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.weight * torch.rsqrt(var + bn.eps)
    shift = bn.bias + scale * (pw.bias - mean)
    z = torch.baddbmm(shift.view(1, -1, 1), (scale.view(-1, 1) * w).expand(b, -1, -1), taps)
    return z.view(b, -1, 2, h, t // 2)


def main_unit(unit: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """depthwise k=3 -> pointwise -> BatchNorm -> ReLU -> MaxPool 2/2 (ceil) of a MainUnit."""
    dw, pw, bn, _, _ = unit
    cin = dw.in_channels
    # the folded statistics are this process's batch's: a BatchNorm that shares them over
    # ranks (distributed.GroupBatchNorm, SyncBatchNorm) trains through its own forward
    own_stats = type(bn) is nn.BatchNorm2d or not bn.training
    folds = own_stats and bn.momentum is not None and bn.track_running_stats
    if cin == 1 and x.shape[-1] % 2 == 0 and folds:
        return _PoolReluPairs.apply(_first_unit_normalised(unit, x))
    weight = pw.weight.view(-1, cin, 1, 1) * dw.weight.view(1, cin, 1, 3)
    return _PoolRelu.apply(bn(_ConvK3.apply(x, weight, pw.bias)))


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
