"""A Keras copy of a trained ULW-SleepNet, the route to a clean int8 TensorFlow Lite graph.

Layout NHWC = (batch, channel row, time, features): the shared extractor becomes Conv2D /
DepthwiseConv2D with (1, k) kernels over H = the 4 input channels, exactly as the PyTorch model
computes it, so the converter emits CONV_2D / DEPTHWISE_CONV_2D / MAX_POOL_2D / ADD /
AVERAGE_POOL_2D / RESHAPE / FULLY_CONNECTED and no transposes. Global average pooling over time
is an AVERAGE_POOL_2D with a (1, 47) window rather than MEAN: same value, and TFLite Micro's
average-pool arithmetic is a plain rounded integer division that the C engine matches exactly.
Dropout disappears at inference; BatchNorm (epsilon 1e-3 in both) folds into the pointwise
convolution before it.

Composed shortcut (the default). A DSSC block's shortcut stream is two position-wise units,
y1 = W1 (d1 * x[::2]) + b1 and y2 = W2 (d2 * y1[::2]) + b2 (d: the kernel-1 depthwise scales,
W: the pointwise weights), with no activation in between. It equals, exactly in real
arithmetic, the one unit y2 = W (d1 * x[::4]) + b with W = W2 diag(d2) W1 and
b = W2 (d2 * b1) + b2: a kernel-1 depthwise convolution of stride 4 and one pointwise
convolution. The mirror builds that unit (``compose_shortcut=True``): the int8 graph then
quantises one unit instead of two, and the engine computes cin x cout MACs per output
position instead of cin x inner + inner x cout (docs/converter.md, "Composed shortcut
streams": the accuracy and cost before and after). The float reference (ONNX) keeps the trained
graph as it is.
"""

from __future__ import annotations

import numpy as np
import torch

from training.model import DSSC, ULWSleepNet


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def build_keras(model: ULWSleepNet, compose_shortcut: bool = True):
    """Keras functional model with the weights of ``model`` (eval mode). Input (1, 4, 3000, 1):
    a fixed batch of one, as on the device, so flattening is a single static RESHAPE.
    compose_shortcut: each shortcut stream as one unit (see the module docstring)."""
    import keras
    from keras import layers

    cfg = model.config
    inp = keras.Input((cfg.n_channels, cfg.samples, 1), batch_size=1, name="epoch")
    x = inp
    for b, block in enumerate(model.extractor):
        assert isinstance(block, DSSC)
        main = x
        for u, unit in enumerate(block.main):
            pw, bn = unit[1], unit[2]
            name = f"dssc{b + 1}_main{u + 1}"
            main = layers.DepthwiseConv2D(
                (1, 3), padding="same", use_bias=False, name=f"{name}_dw"
            )(main)
            main = layers.Conv2D(pw.out_channels, 1, name=f"{name}_pw")(main)
            main = layers.BatchNormalization(epsilon=bn.eps, name=f"{name}_bn")(main)
            main = layers.ReLU(name=f"{name}_relu")(main)
            main = layers.MaxPool2D((1, 2), (1, 2), padding="same", name=f"{name}_pool")(main)
        short = x
        if compose_shortcut:  # one unit: stride s1 * s2, the second unit's width
            (dw1, _), (dw2, pw2) = ((unit[0], unit[1]) for unit in block.shortcut)
            units = [(f"dssc{b + 1}_short", dw1.stride[1] * dw2.stride[1], pw2.out_channels)]
        else:
            units = [
                (f"dssc{b + 1}_short{u + 1}", unit[0].stride[1], unit[1].out_channels)
                for u, unit in enumerate(block.shortcut)
            ]
        for name, stride, width in units:
            short = layers.DepthwiseConv2D(
                (1, 1), strides=(1, stride), padding="valid", use_bias=False, name=f"{name}_dw"
            )(short)
            short = layers.Conv2D(width, 1, name=f"{name}_pw")(short)
        x = layers.Add(name=f"dssc{b + 1}_add")([main, short])
    x = layers.AveragePooling2D((1, x.shape[2]), name="gap")(x)  # (batch, 4, 1, width)
    x = layers.Flatten(name="concat")(x)  # channel-major, as the PyTorch model concatenates
    x = layers.Dense(cfg.hidden, name="dense1")(x)
    out = layers.Dense(cfg.n_classes, name="logits")(x)
    kmodel = keras.Model(inp, out, name="ulw_sleepnet")
    _copy_weights(model, kmodel, compose_shortcut)
    return kmodel


def composed_shortcut(block: DSSC) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, W, b) of the one unit equal to the block's two shortcut units: depthwise scales d
    [cin], pointwise weights W [cout, cin] and bias b [cout], computed in float64."""
    (dw1, pw1), (dw2, pw2) = ((u[0], u[1]) for u in block.shortcut)
    d1 = _np(dw1.weight).astype(np.float64).reshape(-1)
    d2 = _np(dw2.weight).astype(np.float64).reshape(-1)
    w1 = _np(pw1.weight).astype(np.float64)[:, :, 0, 0]
    w2 = _np(pw2.weight).astype(np.float64)[:, :, 0, 0]
    b1, b2 = _np(pw1.bias).astype(np.float64), _np(pw2.bias).astype(np.float64)
    return d1, (w2 * d2) @ w1, w2 @ (d2 * b1) + b2


def _copy_weights(model: ULWSleepNet, kmodel, compose_shortcut: bool) -> None:
    for b, block in enumerate(model.extractor):
        for u, unit in enumerate(block.main):
            dw, pw, bn = unit[0], unit[1], unit[2]
            name = f"dssc{b + 1}_main{u + 1}"
            # torch depthwise (C, 1, 1, k) -> keras (1, k, C, 1)
            kmodel.get_layer(f"{name}_dw").set_weights([_np(dw.weight).transpose(2, 3, 0, 1)])
            kmodel.get_layer(f"{name}_pw").set_weights(
                [_np(pw.weight).transpose(2, 3, 1, 0), _np(pw.bias)]
            )
            kmodel.get_layer(f"{name}_bn").set_weights(
                [_np(bn.weight), _np(bn.bias), _np(bn.running_mean), _np(bn.running_var)]
            )
        if compose_shortcut:
            d, w, bias = composed_shortcut(block)
            name = f"dssc{b + 1}_short"
            kmodel.get_layer(f"{name}_dw").set_weights([d.reshape(1, 1, -1, 1)])
            kmodel.get_layer(f"{name}_pw").set_weights([w.T.reshape(1, 1, *w.T.shape), bias])
            continue
        for u, unit in enumerate(block.shortcut):
            dw, pw = unit[0], unit[1]
            name = f"dssc{b + 1}_short{u + 1}"
            kmodel.get_layer(f"{name}_dw").set_weights([_np(dw.weight).transpose(2, 3, 0, 1)])
            kmodel.get_layer(f"{name}_pw").set_weights(
                [_np(pw.weight).transpose(2, 3, 1, 0), _np(pw.bias)]
            )
    dense1, dense2 = model.head[1], model.head[2]
    kmodel.get_layer("dense1").set_weights([_np(dense1.weight).T, _np(dense1.bias)])
    kmodel.get_layer("logits").set_weights([_np(dense2.weight).T, _np(dense2.bias)])


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """(n, 4, 3000) model input -> (n, 4, 3000, 1) Keras / TFLite input."""
    return np.asarray(x)[..., None]
