"""PyTorch -> ONNX (float reference) and PyTorch -> Keras mirror -> full-integer int8 .tflite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sleepdata.normalise import INPUT_SCALE
from training.model import ULWSleepNet, generic_kernels

from .keras_mirror import build_keras, to_nhwc


class ConversionError(RuntimeError):
    """A conversion result that fails its check (parity, quantisation); says which and by how
    much."""


def export_onnx(model: ULWSleepNet, path: Path, check: np.ndarray, tol: float = 1e-5) -> float:
    """Write the float model as ONNX (input 'epoch' (n, 4, 3000) = q / 16, output 'logits');
    return the largest |onnxruntime - PyTorch| on ``check`` (float inputs), checked <= tol
    relative to the largest |logit| (at least 1): float32 rounding grows with the values."""
    import onnxruntime as ort

    model.eval()
    dummy = torch.zeros(1, model.config.n_channels, model.config.samples)
    with generic_kernels(model), torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["epoch"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"epoch": {0: "batch"}, "logits": {0: "batch"}},
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"epoch": check.astype(np.float32)})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(check.astype(np.float32))).numpy()
    diff = float(np.abs(got - want).max())
    bound = tol * max(1.0, float(np.abs(want).max()))
    if diff > bound:
        raise ConversionError(
            f"ONNX output differs from PyTorch by {diff:.2e} (> {bound:.2e}: {tol:g} of the "
            "largest logit)"
        )
    return diff


def keras_parity(model: ULWSleepNet, kmodel, check: np.ndarray, tol: float = 1e-4) -> float:
    """Largest |Keras - PyTorch| on float inputs (n, 4, 3000), checked <= tol."""
    with torch.no_grad():
        want = model(torch.from_numpy(check.astype(np.float32))).numpy()
    got = np.concatenate(
        [kmodel(to_nhwc(x[None]).astype(np.float32), training=False).numpy() for x in check]
    )
    diff = float(np.abs(got - want).max())
    if diff > tol:
        raise ConversionError(f"Keras mirror differs from PyTorch by {diff:.2e} (> {tol:g})")
    return diff


def to_int8_tflite(
    model: ULWSleepNet, representative_int8: np.ndarray, compose_shortcut: bool = True
) -> tuple[bytes, object]:
    """Full-integer TFLite (int8 input and output, int32 biases) calibrated on int8 model inputs
    (n, 4, 3000) from the shared normalisation. The input must come out with scale 1/16 and zero
    point 0 (so the board's int8 feeds straight in): the calibration set therefore holds a
    full-scale epoch, and the result is checked. compose_shortcut: see converter.keras_mirror."""
    import tensorflow as tf

    kmodel = build_keras(model, compose_shortcut)
    full_scale = np.tile(np.array([-128, 127], np.int8), representative_int8[0].size // 2)
    calib = np.concatenate(
        [full_scale.reshape(1, *representative_int8.shape[1:]), representative_int8]
    )

    def gen():
        for x in calib:
            yield [to_nhwc(x[None].astype(np.float32) * INPUT_SCALE)]

    conv = tf.lite.TFLiteConverter.from_keras_model(kmodel)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    flat = conv.convert()
    interp = tf.lite.Interpreter(model_content=flat)
    scale, zp = interp.get_input_details()[0]["quantization"]
    if (np.float32(scale), zp) != (np.float32(INPUT_SCALE), 0):
        raise ConversionError(
            f"int8 input quantisation is ({scale}, {zp}); the board's input "
            f"needs ({INPUT_SCALE}, 0)"
        )
    return flat, kmodel
