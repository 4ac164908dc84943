"""Named training recipes, and what a recipe does to a freshly built ULW-SleepNet.

``project`` is the recipe of this repository (`TrainConfig`'s defaults: batch 128, macro-F1
checkpoint selection, PyTorch's default initialisation and BatchNorm momentum). ``paper`` is the
original ULW-SleepNet training as published and in its public Keras code: batch 32, 50 epochs,
Adam (amsgrad) lr 1e-3 with cosine warm restarts per batch (first period 10 batches, doubling),
unweighted cross-entropy, no augmentation, no weight decay (the original's L2 is passed to layers
that ignore it), Keras initialisation (Glorot-uniform kernels, zero biases; BatchNorm gamma 1,
beta 0) and Keras BatchNorm momentum 0.99, i.e. PyTorch momentum 1 - 0.99 = 0.01 (epsilon 1e-3
is the model's own). Its checkpoint is the epoch of best ACCURACY, as in the original, but on
the validation subjects: the original selected on the test fold, which leaks the test set into
the reported score.

Also the TensorFlow-profiler "FLOPs" of a model (`profiler_flops`), the count behind the paper's
7.89 M, computed from the layers of `training.model.layer_counts`.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from .model import ULWSleepNet, layer_counts

# Recipe name -> TrainConfig options it sets (explicit options still override them). The
# project recipe is TrainConfig's defaults.
RECIPES: dict[str, dict] = {
    "project": {},
    "paper": {
        "batch_size": 32,
        "epochs": 50,
        "lr": 1e-3,
        "restart_steps": 10,
        "weight_decay": 0.0,
        "class_weights": False,
        "select": "acc",
        "init": "glorot",
        "bn_momentum": 0.01,
    },
}

# The original's values of what a model card compares (the normalisation, the folds and the
# place of checkpoint selection are properties of the original's pipeline, not options).
ORIGINAL = RECIPES["paper"]

SELECT_METRICS = {"macro_f1": "val_macro_f1", "acc": "val_acc"}
INITS = ("torch", "glorot")


def glorot_init(model: nn.Module) -> nn.Module:
    """Keras' default initialisation: Glorot-uniform kernels of every convolution and dense
    layer, zero biases, BatchNorm gamma 1 and beta 0. PyTorch's fan-in and fan-out of a
    depthwise (C, 1, 1, k) kernel are k and C*k, Keras' of its (1, k, C, 1) kernel C*k and k:
    the sums, and so the bounds sqrt(6 / (fan_in + fan_out)), are the same."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def set_bn_momentum(model: nn.Module, momentum: float) -> nn.Module:
    """PyTorch momentum of every BatchNorm layer (the weight of the new batch statistic: Keras'
    momentum m is PyTorch's 1 - m). Not part of the state dict: only training uses it."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
    return model


def prepare_model(model: ULWSleepNet, init: str, bn_momentum: float) -> ULWSleepNet:
    """A freshly built model with the recipe's initialisation (``init`` "torch": left as
    built, drawing nothing from the generator) and BatchNorm momentum."""
    if init not in INITS:
        raise ValueError(f"init {init!r}: expected one of {', '.join(INITS)}")
    if init == "glorot":
        glorot_init(model)
    return set_bn_momentum(model, bn_momentum)


def profiler_flops(model: ULWSleepNet, fused_batchnorm: bool = True) -> dict[str, int]:
    """Floating-point operations per input epoch as TensorFlow's profiler counts them
    (``tf.compat.v1.profiler`` float_operation, its per-op registry) for this model's inference
    graph; returns each op type's count and their ``total``.

    The registry's rules: Conv2D, DepthwiseConv2dNative and MatMul 2 per multiply-accumulate;
    BiasAdd 1 per element (pointwise convolutions and dense layers); MaxPool kernel area (2) per
    output element; AddV2 (the DSSC merge) 1 per element; Mean (global average pooling) 1 per
    input element; Softmax 5 per element. FusedBatchNormV3, what Keras runs on 4-D tensors, is
    not in the registry and counts 0; ``fused_batchnorm=False`` counts Keras' unfused inference
    BatchNorm instead: a Mul and an AddV2 per element plus 6 per feature for its scale and
    offset (var + eps, rsqrt at 2, * gamma, mean * scale, beta - that). ReLU, Dropout and
    Concat are not in the registry either."""
    rows = layer_counts(model)

    def elements(kind: str) -> int:
        return sum(math.prod(r.output_shape) for r in rows if r.kind == kind)

    batchnorm = [r for r in rows if r.kind == "batchnorm"]
    merges = [r for r in rows if r.kind == "pointwise" and r.name.endswith("shortcut.1.1")]
    last = merges[-1].output_shape  # (features, rows, length) before global average pooling
    counts = {
        "conv_matmul": 2 * sum(r.macs for r in rows),
        "bias_add": elements("pointwise") + elements("dense"),
        # ceil-mode pooling: an odd length's last window holds one sample but counts 2
        "max_pool": sum(
            2 * f * h * math.ceil(t / 2) for f, h, t in (r.output_shape for r in batchnorm)
        ),
        "merge_add": sum(math.prod(r.output_shape) for r in merges),
        "mean": math.prod(last),
        "softmax": 5 * model.config.n_classes,
        "batchnorm": 0
        if fused_batchnorm
        else 2 * elements("batchnorm") + 6 * sum(r.output_shape[0] for r in batchnorm),
    }
    counts["total"] = int(np.sum(list(counts.values())))
    return counts
