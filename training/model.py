"""ULW-SleepNet in PyTorch, laid out so that the int8 TensorFlow Lite conversion is exact.

One feature extractor is shared by the input channels (Fpz-Cz, Pz-Oz, EOG, EMG): the input is
(batch, 1, channels, 3000) and every convolution has a (1, k) kernel, so the same weights slide
along time for each channel row and never mix rows. This is a Conv2D over H = channel in
TensorFlow terms (NHWC: batch, channel, time, features), which converts to plain CONV_2D /
DEPTHWISE_CONV_2D ops without transposes.

Conventions matching TensorFlow: depthwise k=3 stride 1 with one zero on each side ('same');
depthwise k=1 stride 2 without padding (TF 'same' pads nothing there); max pooling 2/2 with
ceil mode ('same' for odd lengths: the last window holds one sample); BatchNorm epsilon 1e-3.

Per channel, lengths go 3000 -> 750 -> 188 -> 47 through three DSSC blocks of widths 8/16/32;
global average pooling gives 32 features per channel; the 4 x 32 features are concatenated
(channel-major) and go through Dropout 0.3 -> Dense 64 (linear) -> Dense 5 (logits).
"""

from __future__ import annotations

import contextlib
import json
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sleepdata.layout import EPOCH_SAMPLES
from sleepdata.stages import N_STAGES

from . import fastpath
from .errors import ModelFolderError

BN_EPS = 1e-3


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a ULW-SleepNet variant. ``widths`` are the DSSC output widths;
    ``inner_widths`` the widths after each block's first unit (default: the same), so that
    pruned variants build from a config."""

    n_channels: int = 4
    widths: tuple[int, ...] = (8, 16, 32)
    inner_widths: tuple[int, ...] | None = None
    hidden: int = 64
    n_classes: int = N_STAGES
    block_dropout: float = 0.1
    head_dropout: float = 0.3
    samples: int = EPOCH_SAMPLES

    @property
    def inner(self) -> tuple[int, ...]:
        return self.inner_widths if self.inner_widths is not None else self.widths

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        if d.get("inner_widths") is not None:
            d["inner_widths"] = tuple(d["inner_widths"])
        return cls(**d)


# The three layers below are ordinary Conv2d / MaxPool2d (same parameters, same state dict,
# same results to float rounding) whose forward is written with slices and a matmul: on a CPU
# that is 3x faster to train than the generic convolution kernels for these tiny channel counts.


class DepthwiseConv(nn.Conv2d):
    """Depthwise (1, k) convolution, k in {1, 3}, no bias; k=3: stride 1, one zero each side;
    k=1: any stride, no padding. Layout NCHW (batch, features, channel row, time)."""

    def __init__(self, channels: int, k: int, stride: int):
        if k not in (1, 3) or (k == 3 and stride != 1):
            raise ValueError("DepthwiseConv supports k=3 stride 1 and k=1")
        super().__init__(
            channels,
            channels,
            (1, k),
            stride=(1, stride),
            padding=(0, k // 2),
            groups=channels,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.view(1, -1, 1, self.kernel_size[1])
        if self.kernel_size[1] == 1:
            return x[..., :: self.stride[1]] * w
        n = x.shape[-1]
        xp = F.pad(x, (1, 1))
        return (
            xp[..., :n] * w[..., 0:1] + xp[..., 1 : n + 1] * w[..., 1:2] + xp[..., 2:] * w[..., 2:]
        )


class PointwiseConv(nn.Conv2d):
    """1x1 convolution with bias, as one matrix product over (features, rows x time)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, t = x.shape
        y = torch.matmul(self.weight.view(self.out_channels, c), x.reshape(b, c, h * t))
        return (y + self.bias.view(1, -1, 1)).view(b, self.out_channels, h, t)


class MaxPoolCeil(nn.MaxPool2d):
    """Max pooling 2/2 along time; an odd last sample forms a window of its own (TF 'same')."""

    def __init__(self):
        super().__init__((1, 2), (1, 2), ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1), value=float("-inf"))
        return torch.maximum(x[..., 0::2], x[..., 1::2])


class Dropout(nn.Dropout):
    """nn.Dropout with a faster mask draw (`fastpath.dropout`): same probability, other draws."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fastpath.dropout(x, self.p, self.training)


@contextlib.contextmanager
def generic_kernels(model: nn.Module):
    """Run the fast layers through torch's generic Conv2d / MaxPool2d kernels (same results):
    exports then show Conv and MaxPool operators instead of slices and matrix products."""
    patched = []
    for m in model.modules():
        if isinstance(m, DepthwiseConv | PointwiseConv | MaxPoolCeil):
            base = nn.MaxPool2d if isinstance(m, MaxPoolCeil) else nn.Conv2d
            m.forward = types.MethodType(base.forward, m)
            patched.append(m)
    try:
        yield model
    finally:
        for m in patched:
            del m.forward


class MainUnit(nn.Sequential):
    """depthwise k=3 -> pointwise -> BatchNorm -> ReLU -> MaxPool 2/2 (ceil)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            DepthwiseConv(cin, 3, 1),
            PointwiseConv(cin, cout),
            nn.BatchNorm2d(cout, eps=BN_EPS),
            nn.ReLU(),
            MaxPoolCeil(),
        )


class ShortcutUnit(nn.Sequential):
    """depthwise k=1 stride 2 -> pointwise (no BN, no activation)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(DepthwiseConv(cin, 1, 2), PointwiseConv(cin, cout))


class DSSC(nn.Module):
    """Dual-Stream Separable Convolution block: two main units + two shortcut units, added."""

    def __init__(self, cin: int, inner: int, cout: int, dropout: float):
        super().__init__()
        self.main = nn.Sequential(MainUnit(cin, inner), MainUnit(inner, cout))
        self.shortcut = nn.Sequential(ShortcutUnit(cin, inner), ShortcutUnit(inner, cout))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fastpath.observed(self):
            return self.dropout(self.main(x) + self.shortcut(x))
        return self.dropout(fastpath.dssc(self, x))


class ULWSleepNet(nn.Module):
    """Input (batch, channels, samples) or (batch, 1, channels, samples); output logits."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        blocks, cin = [], 1
        for inner, cout in zip(config.inner, config.widths, strict=True):
            blocks.append(DSSC(cin, inner, cout, config.block_dropout))
            cin = cout
        self.extractor = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            Dropout(config.head_dropout),
            nn.Linear(config.n_channels * cin, config.hidden),
            nn.Linear(config.hidden, config.n_classes),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        f = self.extractor(x).mean(dim=3)  # (batch, width, channels)
        return f.transpose(1, 2).flatten(1)  # channel-major concat, as NHWC flattening does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ------------------------------------------------------------------------------------------
# Counting


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class LayerCount:
    name: str
    kind: str
    params: int
    macs: int
    output_shape: list[int] = field(default_factory=list)


def layer_counts(model: ULWSleepNet) -> list[LayerCount]:
    """Per-layer trainable parameters and multiply-accumulates for one input epoch.

    MACs count convolutions and dense layers (BatchNorm folds into the preceding pointwise
    convolution; pooling, adds and biases are not MACs). The extractor runs once per channel.
    """
    rows: list[LayerCount] = []
    hooks = []

    def hook(name: str, kind: str):
        def fn(mod: nn.Module, inp, out) -> None:
            params = sum(p.numel() for p in mod.parameters(recurse=False) if p.requires_grad)
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1]
                macs = out.numel() * k * (mod.in_channels // mod.groups)
            elif isinstance(mod, nn.Linear):
                macs = mod.in_features * mod.out_features
            else:
                macs = 0
            rows.append(LayerCount(name, kind, params, macs, list(out.shape[1:])))

        return fn

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            kind = "depthwise" if isinstance(mod, DepthwiseConv) else "pointwise"
            hooks.append(mod.register_forward_hook(hook(name, kind)))
        elif isinstance(mod, nn.BatchNorm2d):
            hooks.append(mod.register_forward_hook(hook(name, "batchnorm")))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(hook(name, "dense")))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.config.n_channels, model.config.samples))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def summary(model: ULWSleepNet) -> dict:
    layers = layer_counts(model)
    return {
        "params": count_params(model),
        "macs": sum(r.macs for r in layers),
        "config": model.config.to_dict(),
        "layers": [asdict(r) for r in layers],
    }


# ------------------------------------------------------------------------------------------
# Saving and loading a model folder: config.json + weights.pt (+ normalisation in config)


WEIGHTS = "weights.pt"
CONFIG = "config.json"


def save_model(folder: str | Path, model: ULWSleepNet, extra: dict | None = None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / WEIGHTS)
    cfg = {"model": model.config.to_dict(), **(extra or {})}
    (folder / CONFIG).write_text(json.dumps(cfg, indent=1) + "\n")


def load_model(folder: str | Path) -> tuple[ULWSleepNet, dict]:
    """(model in eval mode, the folder's config.json); ModelFolderError when ``folder`` is not
    a model folder (no config.json or weights.pt, or a config.json that is not JSON)."""
    folder = Path(folder)
    cfg_path = folder / CONFIG
    what = (
        "a model folder holds config.json and weights.pt, e.g. models/ulw_sleepnet or the "
        "RUN/split/model (RUN/fold-K/model) that python -m training train writes"
    )
    if not folder.is_dir():
        raise ModelFolderError(folder, f"no such model folder; {what}")
    if not cfg_path.is_file():
        raise ModelFolderError(folder, f"no {CONFIG}, not a model folder; {what}")
    if not (folder / WEIGHTS).is_file():
        raise ModelFolderError(folder, f"no {WEIGHTS} beside its {CONFIG}; {what}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFolderError(cfg_path, f"not valid JSON ({exc})") from None
    model = ULWSleepNet(ModelConfig.from_dict(cfg["model"]))
    state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model, cfg
