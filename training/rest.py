"""REST for ULW-SleepNet: adversarial attacks on the raw signal, the spectral and sparsity
regularisers, and structured pruning with physical channel removal.

The recipe and its published settings: Duggal et al., "REST: Robust and Efficient Neural Networks
for Sleep Monitoring in the Wild", WWW 2020, https://arxiv.org/abs/2001.11363; docs/robustness.md
says what is done here and why it differs.

Attacks work on microvolts, before the deployment normalisation (sleepdata/normalise.py). The
model sees ``v = q / 16`` with ``q`` the int8 input the board computes from int16 wire samples;
`DifferentiableInput` runs that path in torch: its forward values are exactly the board's
(same wire rounding, epoch mean, multiply-shift and saturation), and its gradient is that of the
linear path ``clamp((x / lsb - mean) * M / 2^S, -128, 127) / 16`` (rounding passed straight
through, the clamp's zero gradient kept).

ULW-SleepNet has four channels with very different ranges (EEG ~ +-200 uV, the EMG envelope
0..5 uV); an attack budget of ``eps`` microvolts would swamp the EMG. ``eps`` is therefore given
in microvolts of the first EEG channel (Fpz-Cz, the channel REST attacked) and scaled per channel
by the training standard deviation: ``eps_c = eps * sigma_c / sigma_Fpz-Cz`` (`channel_scale`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sleepdata.noise import SignalStats
from sleepdata.normalise import INPUT_SCALE, Normaliser

from .model import DSSC, ModelConfig, ULWSleepNet
from .sources import ATTACK_ALIASES, ATTACKS, REST_CODE_STEP_UV

# ------------------------------------------------------------------------------------------
# The deployment input path, differentiable


class DifferentiableInput(nn.Module):
    """Microvolts (n, channels, samples) float -> the model's float input (n, channels,
    samples), equal to ``Normaliser.model_input(x) / 16`` bit for bit (computed in float64, where
    every integer of the formula is exact), with the gradient of the linear path with clamp."""

    def __init__(self, norm: Normaliser):
        super().__init__()
        ch = norm.channels
        f64 = torch.float64
        self.register_buffer("lsb", torch.tensor([c.lsb_uv for c in ch], dtype=f64).view(-1, 1))
        self.register_buffer(
            "mult", torch.tensor([c.multiplier for c in ch], dtype=f64).view(-1, 1)
        )
        self.register_buffer("div", torch.tensor([2.0**c.shift for c in ch], dtype=f64).view(-1, 1))
        self.register_buffer(
            "dc", torch.tensor([c.remove_dc for c in ch], dtype=torch.bool).view(-1, 1)
        )
        self.register_buffer("offset", torch.tensor([c.offset for c in ch], dtype=f64).view(-1, 1))

    def forward(self, x_uv: torch.Tensor) -> torch.Tensor:
        x = x_uv.to(torch.float64)
        n = x.shape[-1]
        # the linear path (gradient)
        s_lin = x / self.lsb
        m_lin = torch.where(self.dc, s_lin.mean(dim=-1, keepdim=True), self.offset)
        q_lin = ((s_lin - m_lin) * self.mult / self.div).clamp(-128.0, 127.0)
        # the board's integers (values)
        with torch.no_grad():
            s = torch.round(x / self.lsb).clamp(-32768.0, 32767.0)  # round half to even = rint
            m_dc = torch.floor((s.sum(dim=-1, keepdim=True) + n // 2) / n)
            m = torch.where(self.dc, m_dc, self.offset)
            q = torch.floor(((s - m) * self.mult + self.div / 2) / self.div).clamp(-128.0, 127.0)
        v = q_lin + (q - q_lin).detach()
        return (v * INPUT_SCALE).to(torch.float32)


def channel_scale(stats: SignalStats) -> np.ndarray:
    """Per-channel multiplier of an attack budget given in microvolts of channel 0 (Fpz-Cz):
    sigma_c / sigma_0 from the training statistics, (channels,) float64."""
    std = np.asarray(stats.std_uv, dtype=np.float64)
    if not (std > 0).all():
        raise ValueError("channel_scale: every channel needs a positive training std")
    return std / std[0]


# ------------------------------------------------------------------------------------------
# Attacks


@dataclass(frozen=True)
class Attack:
    """An L-inf attack on microvolts. ``eps_uv`` and ``step_uv`` are in microvolts of channel 0
    (scaled per channel by `channel_scale`); ``step_uv`` None takes the kind's default: eps for
    ``paper`` (eq. 2), 0.01 for ``rest-code``, 2.5 * eps / iterations for ``pgd``."""

    kind: str
    eps_uv: float
    iterations: int = 10
    step_uv: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "kind", ATTACK_ALIASES.get(self.kind, self.kind))
        if self.kind not in ATTACKS:
            raise ValueError(f"attack {self.kind!r}: expected one of {', '.join(ATTACKS)}")
        if not self.eps_uv >= 0 or self.iterations < 0:
            raise ValueError(f"attack {self.kind}: eps and iterations must not be negative")

    @property
    def step(self) -> float:
        if self.step_uv is not None:
            return self.step_uv
        if self.kind == "paper":
            return self.eps_uv
        if self.kind == "rest-code":
            return REST_CODE_STEP_UV
        return 2.5 * self.eps_uv / max(self.iterations, 1)

    @property
    def random_start(self) -> bool:
        """REST's code and a standard PGD start at a uniform random point of the ball; the
        paper's eq. 2 starts at the clean input."""
        return self.kind != "paper"

    def __str__(self) -> str:
        return f"{self.kind} eps {self.eps_uv:g} uV, {self.iterations} x {self.step:g} uV"


def attack(
    model: nn.Module,
    inp: DifferentiableInput,
    x_uv: torch.Tensor,
    y: torch.Tensor,
    spec: Attack,
    scale: np.ndarray,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Adversarial microvolts for ``x_uv`` (n, channels, samples) float32 and labels ``y``:
    start at ``x_uv`` (``paper``) or at a random point in U(-eps, eps) (``rest-code``, ``pgd``;
    drawn from ``generator``), then ``iterations`` signed-gradient steps on the cross-entropy,
    each projected back onto the eps ball. The model runs in eval mode (BatchNorm
    running statistics, no dropout) and its mode is restored afterwards; no parameter gradient
    is left behind."""
    if spec.eps_uv == 0:
        return x_uv.detach().clone()
    was_training = model.training
    model.eval()
    sc = torch.as_tensor(scale, dtype=torch.float32).view(-1, 1)
    eps, step = spec.eps_uv * sc, spec.step * sc
    x0 = x_uv.detach()
    if spec.random_start:
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float32)
        delta = (2.0 * u - 1.0) * eps
    else:
        delta = torch.zeros_like(x0)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        for _ in range(spec.iterations):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(inp(x0 + delta)), y)
            (grad,) = torch.autograd.grad(loss, delta)
            delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    return (x0 + delta).detach()


# ------------------------------------------------------------------------------------------
# Regularisers


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """Every convolution and dense weight as out x (in * k)."""
    return [
        m.weight.reshape(m.weight.shape[0], -1)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]


def spectral_penalty(model: nn.Module) -> torch.Tensor:
    """REST's orthogonality term: sum over layers of ||W^T W - I||_F (Frobenius, not squared).
    Note: it has a floor of sqrt(in*k - out) where in*k > out (W^T W has rank <= out)."""
    total = torch.zeros(())
    for w in weight_matrices(model):
        gram = w.t() @ w
        total = total + torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0]), ord="fro")
    return total


def bn_l1(model: nn.Module) -> torch.Tensor:
    """REST's sparsity term: sum of |gamma| over every BatchNorm."""
    total = torch.zeros(())
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            total = total + m.weight.abs().sum()
    return total


# ------------------------------------------------------------------------------------------
# Structured pruning of DSSC channels


@dataclass(frozen=True)
class PrunePlan:
    """Channels to keep per DSSC block: ``inner[b]`` after the block's first units, ``outer[b]``
    the block's output channels; sorted original indices. ``threshold``: the global |gamma|
    threshold (channels at or below it are removed unless a layer's floor or width keeps them);
    ``by_threshold``: per layer (inner and outer of each block, in order) the count the
    threshold and floor alone keep, before rounding up to an allowed width."""

    inner: tuple[tuple[int, ...], ...]
    outer: tuple[tuple[int, ...], ...]
    threshold: float | None = None
    by_threshold: tuple[int, ...] | None = None

    def config(self, base: ModelConfig) -> ModelConfig:
        return ModelConfig(
            **{
                **asdict(base),
                "widths": tuple(len(k) for k in self.outer),
                "inner_widths": tuple(len(k) for k in self.inner),
            }
        )

    def to_dict(self) -> dict:
        return {
            "inner": [list(k) for k in self.inner],
            "outer": [list(k) for k in self.outer],
            "threshold": self.threshold,
            "by_threshold": list(self.by_threshold) if self.by_threshold else None,
        }


def _blocks(model: ULWSleepNet) -> list[DSSC]:
    return list(model.extractor)


def gammas(model: ULWSleepNet) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per block (|gamma| of the inner BatchNorm, |gamma| of the output BatchNorm)."""
    return [
        (b.main[0][2].weight.detach().abs(), b.main[1][2].weight.detach().abs())
        for b in _blocks(model)
    ]


def plan_pruning(
    model: ULWSleepNet,
    fraction: float,
    min_fraction: float = 0.1,
    widths: Sequence[int] | None = None,
) -> PrunePlan:
    """Network-slimming selection: one global threshold over every |gamma| removes ``fraction``
    of the DSSC channels (inner and output), keeping at least ceil(min_fraction * width) (and at
    least one) channel of each layer, the largest |gamma| first.

    ``widths``: the channel counts a layer may keep (e.g. 4, 8, 16, 32: the counts the firmware
    engine has fast kernels for). Each layer's count is then rounded UP to the next allowed one
    (never above the layer's width), again keeping the largest |gamma|: the threshold decides
    how small a layer gets, the hardware which width it gets.

    An inner channel feeds the main stream through its BatchNorm and the shortcut stream without
    one; only the main stream's gamma ranks it (the shortcut has no gate to read)."""
    if not 0 <= fraction < 1 or not 0 < min_fraction <= 1:
        raise ValueError("prune fraction must be in [0, 1) and the per-layer minimum in (0, 1]")
    allowed = sorted(set(widths)) if widths else None
    if allowed is not None and allowed[0] < 1:
        raise ValueError(f"prune widths must be positive, got {list(widths)}")
    layers = [g for pair in gammas(model) for g in pair]
    allg = torch.cat(layers)
    n_remove = round(fraction * allg.numel())
    threshold = torch.sort(allg).values[n_remove - 1].item() if n_remove > 0 else -1.0
    keeps, counted = [], []
    for g in layers:
        floor = max(1, math.ceil(min_fraction * g.numel()))
        keep = set(torch.nonzero(g > threshold).flatten().tolist())
        want = max(len(keep), floor)
        counted.append(want)
        if allowed is not None:
            want = min([w for w in allowed if w >= want] or [g.numel()])
            want = min(want, g.numel())
        if len(keep) != want:
            keep = set(torch.argsort(g, descending=True)[:want].tolist())
        keeps.append(tuple(sorted(keep)))
    return PrunePlan(
        inner=tuple(keeps[0::2]),
        outer=tuple(keeps[1::2]),
        threshold=threshold if n_remove > 0 else None,
        by_threshold=tuple(counted),
    )


def _take(t: torch.Tensor, rows=None, cols=None) -> torch.Tensor:
    if rows is not None:
        t = t[list(rows)]
    if cols is not None:
        t = t[:, list(cols)]
    return t.clone()


def prune(model: ULWSleepNet, plan: PrunePlan) -> ULWSleepNet:
    """A smaller ULWSleepNet (built from ``plan.config``) with the kept channels' weights:
    depthwise and pointwise weights, biases and BatchNorm parameters and statistics of both
    streams, the next block's inputs, and the dense layer's columns (channel-major features)."""
    src = model.state_dict()
    new = ULWSleepNet(plan.config(model.config))
    dst = {}
    keep_in: tuple[int, ...] = (0,)
    for b, (k_inner, k_out) in enumerate(zip(plan.inner, plan.outer, strict=True)):
        for stream in ("main", "shortcut"):
            for u, (k_a, k_b) in enumerate(((keep_in, k_inner), (k_inner, k_out))):
                p = f"extractor.{b}.{stream}.{u}."
                dst[p + "0.weight"] = _take(src[p + "0.weight"], k_a)  # depthwise: its inputs
                dst[p + "1.weight"] = _take(src[p + "1.weight"], k_b, k_a)
                dst[p + "1.bias"] = _take(src[p + "1.bias"], k_b)
                if stream == "main":
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        dst[p + "2." + name] = _take(src[p + "2." + name], k_b)
                    dst[p + "2.num_batches_tracked"] = src[p + "2.num_batches_tracked"].clone()
        keep_in = k_out
    width = model.config.widths[-1]
    cols = [c * width + j for c in range(model.config.n_channels) for j in keep_in]
    for name, value in src.items():
        if name.startswith("head."):
            dst[name] = _take(value, cols=cols) if name == "head.1.weight" else value.clone()
    new.load_state_dict(dst)
    new.train(model.training)
    return new


def mask(model: ULWSleepNet, plan: PrunePlan) -> ULWSleepNet:
    """A copy of ``model`` (same size) whose pruned channels output exactly zero: BatchNorm
    gamma and beta of the main stream set to 0, and the shortcut stream's pointwise rows (weight
    and bias) of the same channels set to 0. In eval mode it computes what `prune` computes."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for blk, k_inner, k_out in zip(_blocks(out), plan.inner, plan.outer, strict=True):
            for u, keep in enumerate((k_inner, k_out)):
                drop = [i for i in range(blk.main[u][2].num_features) if i not in set(keep)]
                blk.main[u][2].weight[drop] = 0.0
                blk.main[u][2].bias[drop] = 0.0
                blk.shortcut[u][1].weight[drop] = 0.0
                blk.shortcut[u][1].bias[drop] = 0.0
    return out
