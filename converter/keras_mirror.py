"""A Keras copy of a trained ULW-SleepNet, the route to a clean int8 TensorFlow Lite graph.

Layout NHWC = (batch, channel row, time, features): the shared extractor becomes Conv2D /
DepthwiseConv2D with (1, k) kernels over H = the 4 input channels, exactly as the PyTorch model
computes it, so the converter emits CONV_2D / DEPTHWISE_CONV_2D / MAX_POOL_2D / ADD /
AVERAGE_POOL_2D / RESHAPE / FULLY_CONNECTED and no transposes. Global average pooling over time
is an AVERAGE_POOL_2D with a (1, 47) window rather than MEAN: same value, and TFLite Micro's
average-pool arithmetic is a plain rounded integer division that the C engine matches exactly.
Dropout disappears at inference; BatchNorm (epsilon 1e-3 in both) folds into the pointwise
convolution before it.
"""

from __future__ import annotations

import numpy as np
import torch

from training.model import DSSC, ULWSleepNet


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def build_keras(model: ULWSleepNet):
    """Keras functional model with the weights of ``model`` (eval mode). Input (1, 4, 3000, 1):
    a fixed batch of one, as on the device, so flattening is a single static RESHAPE."""
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
        for u, unit in enumerate(block.shortcut):
            pw = unit[1]
            name = f"dssc{b + 1}_short{u + 1}"
            short = layers.DepthwiseConv2D(
                (1, 1), strides=(1, 2), padding="valid", use_bias=False, name=f"{name}_dw"
            )(short)
            short = layers.Conv2D(pw.out_channels, 1, name=f"{name}_pw")(short)
        x = layers.Add(name=f"dssc{b + 1}_add")([main, short])
    x = layers.AveragePooling2D((1, x.shape[2]), name="gap")(x)  # (batch, 4, 1, width)
    x = layers.Flatten(name="concat")(x)  # channel-major, as the PyTorch model concatenates
    x = layers.Dense(cfg.hidden, name="dense1")(x)
    out = layers.Dense(cfg.n_classes, name="logits")(x)
    kmodel = keras.Model(inp, out, name="ulw_sleepnet")
    _copy_weights(model, kmodel)
    return kmodel


def _copy_weights(model: ULWSleepNet, kmodel) -> None:
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
