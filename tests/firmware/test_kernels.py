"""The firmware's unfused int8 kernels (firmware/engine/kernels: depthwise, 1x1 convolution,
max and average pooling, ADD, fully connected) against TFLM's reference formulas, value for
value on random and extreme inputs; their argument checks; and the sources' layout and
Cortex-M4 build (no floating point anywhere)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from converter.native import ARM_M4_CFLAGS
from converter.tflm_params import quantize_multiplier

from .kernel_lib import (
    ENGINE_ERR_ARG,
    ENGINE_OK,
    FILL,
    INCLUDE,
    KERNELS,
    SOURCES,
    check_output,
    i32,
    out_buffer,
    ptr,
)
from .tflm_reference import (
    rand_act,
    rand_bias,
    rand_mult,
    rand_offset,
    rand_s8,
    rand_shift,
    ref_add,
    ref_avg_pool,
    ref_conv_1x1,
    ref_depthwise,
    ref_fully_connected,
    ref_max_pool,
)

KERNEL_FILES = [
    "add_s8.c",
    "avg_pool_s8.c",
    "conv_1x1_s8.c",
    "depthwise_conv_s8.c",
    "fully_connected_s8.c",
    "max_pool_s8.c",
    "separable_s8.c",
    "shortcut_add_s8.c",
]


# --------------------------------------------------------------------------------------------
# Kernels against the reference


def test_depthwise_conv(lib):
    rng = np.random.default_rng(2)
    total = 0
    while total < 6000:
        len_in, ch = int(rng.integers(1, 41)), int(rng.integers(1, 9))
        kernel, stride = int(rng.integers(1, 10)), int(rng.integers(1, 4))
        pad = int(rng.integers(0, kernel + 1))
        len_out = int(rng.integers(1, -(-len_in // stride) + 3))
        x, w = rand_s8(rng, len_in * ch), rand_s8(rng, kernel * ch)
        bias = rand_bias(rng, ch)
        mult = i32([rand_mult(rng) for _ in range(ch)])
        shift = i32([rand_shift(rng) for _ in range(ch)])
        in_off, out_off = rand_offset(rng), int(rng.integers(-128, 128))
        lo, hi = rand_act(rng)
        out = out_buffer(len_out * ch)
        status = lib.engine_depthwise_conv_s8(
            ptr(x), len_in, ch, ptr(w), ptr(bias), kernel, stride, pad, in_off, out_off,
            ptr(mult), ptr(shift), lo, hi, ptr(out), len_out,
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_depthwise(
            x.tolist(), len_in, ch, w.tolist(), None if bias is None else bias.tolist(), kernel,
            stride, pad, in_off, out_off, mult.tolist(), shift.tolist(), lo, hi, len_out,
        )  # fmt: skip
        check_output(out, expected, f"depthwise len_in={len_in} C={ch} K={kernel} s={stride}")
        total += len(expected)


def test_conv_1x1(lib):
    rng = np.random.default_rng(3)
    total = 0
    while total < 6000:
        length, ic_n, oc_n = (int(v) for v in rng.integers(1, [30, 17, 17]))
        x, w = rand_s8(rng, length * ic_n), rand_s8(rng, oc_n * ic_n)
        bias = rand_bias(rng, oc_n)
        mult = i32([rand_mult(rng) for _ in range(oc_n)])
        shift = i32([rand_shift(rng) for _ in range(oc_n)])
        in_off, out_off = rand_offset(rng), int(rng.integers(-128, 128))
        lo, hi = rand_act(rng)
        out = out_buffer(length * oc_n)
        status = lib.engine_conv_1x1_s8(
            ptr(x), length, ic_n, ptr(w), ptr(bias), oc_n, in_off, out_off, ptr(mult),
            ptr(shift), lo, hi, ptr(out),
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_conv_1x1(
            x.tolist(), length, ic_n, w.tolist(), None if bias is None else bias.tolist(), oc_n,
            in_off, out_off, mult.tolist(), shift.tolist(), lo, hi,
        )  # fmt: skip
        check_output(out, expected, f"conv_1x1 len={length} IC={ic_n} OC={oc_n}")
        total += len(expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool(lib, kind):
    rng = np.random.default_rng(4 if kind == "max" else 5)
    kernel_fn = lib.engine_max_pool_s8 if kind == "max" else lib.engine_avg_pool_s8
    reference = ref_max_pool if kind == "max" else ref_avg_pool
    total = rejected = 0
    while total < 6000:
        len_in, ch = int(rng.integers(1, 41)), int(rng.integers(1, 9))
        window, stride = int(rng.integers(1, 9)), int(rng.integers(1, 5))
        pad = int(rng.integers(0, window + 2))  # sometimes whole windows out of bounds
        len_out = int(rng.integers(1, -(-len_in // stride) + 3))
        x = rand_s8(rng, len_in * ch)
        lo, hi = rand_act(rng)
        out = out_buffer(len_out * ch)
        status = kernel_fn(ptr(x), len_in, ch, window, stride, pad, lo, hi, ptr(out), len_out)
        expected = reference(x.tolist(), len_in, ch, window, stride, pad, lo, hi, len_out)
        if expected is None:  # avg pool over a window with no in-bound tap: TFLM fails
            assert status == ENGINE_ERR_ARG
            assert (out == FILL).all(), "output written although the call failed"
            rejected += 1
            continue
        assert status == ENGINE_OK
        check_output(out, expected, f"{kind}_pool len_in={len_in} C={ch} W={window} s={stride}")
        total += len(expected)
    assert kind == "max" or rejected > 0


def test_add(lib):
    rng = np.random.default_rng(6)
    total = 0
    while total < 8000:
        n = int(rng.integers(1, 300))
        a, b = rand_s8(rng, n), rand_s8(rng, n)
        left_shift = int(rng.choice([20, 20, 0, 1, 8, 22]))
        a_mult, b_mult, out_mult = (rand_mult(rng) for _ in range(3))
        a_shift, b_shift, out_shift = (rand_shift(rng, -31, 0) for _ in range(3))
        a_off, b_off, out_off = rand_offset(rng), rand_offset(rng), int(rng.integers(-128, 128))
        lo, hi = rand_act(rng)
        out = out_buffer(n)
        status = lib.engine_add_s8(
            ptr(a), ptr(b), n, a_off, a_mult, a_shift, b_off, b_mult, b_shift, left_shift,
            out_off, out_mult, out_shift, lo, hi, ptr(out),
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_add(
            a.tolist(), b.tolist(), a_off, a_mult, a_shift, b_off, b_mult, b_shift, left_shift,
            out_off, out_mult, out_shift, lo, hi,
        )  # fmt: skip
        check_output(out, expected, f"add n={n} left_shift={left_shift}")
        total += n


def test_add_realistic_scales(lib):
    """Parameters as TFLM's ADD prepares them (left_shift 20): outputs mostly in range."""
    rng = np.random.default_rng(7)
    n = 4000
    a, b = rand_s8(rng, n), rand_s8(rng, n)
    a_scale, b_scale, out_scale = 0.05, 0.03, 0.06
    twice_max = 2 * max(a_scale, b_scale)
    a_mult, a_shift = quantize_multiplier(a_scale / twice_max)
    b_mult, b_shift = quantize_multiplier(b_scale / twice_max)
    out_mult, out_shift = quantize_multiplier(twice_max / ((1 << 20) * out_scale))
    assert max(a_shift, b_shift, out_shift) <= 0
    out = out_buffer(n)
    args = (3, a_mult, a_shift, -7, b_mult, b_shift, 20, 5, out_mult, out_shift, -128, 127)
    assert lib.engine_add_s8(ptr(a), ptr(b), n, *args, ptr(out)) == ENGINE_OK
    expected = ref_add(a.tolist(), b.tolist(), *args)
    check_output(out, expected, "add realistic")
    assert len(set(expected)) > 100  # a real spread of values, not only saturation


def test_fully_connected(lib):
    rng = np.random.default_rng(8)
    total = 0
    while total < 4000:
        n_in, n_out = int(rng.integers(1, 65)), int(rng.integers(1, 33))
        x, w = rand_s8(rng, n_in), rand_s8(rng, n_out * n_in)
        bias = rand_bias(rng, n_out)
        in_off, w_off, out_off = rand_offset(rng), rand_offset(rng), int(rng.integers(-128, 128))
        mult = np.array([rand_mult(rng) for _ in range(n_out)], dtype=np.int32)
        shift = np.array([rand_shift(rng) for _ in range(n_out)], dtype=np.int32)
        lo, hi = rand_act(rng)
        out = out_buffer(n_out)
        status = lib.engine_fully_connected_s8(
            ptr(x), n_in, ptr(w), ptr(bias), n_out, in_off, w_off, out_off, ptr(mult),
            ptr(shift), lo, hi, ptr(out),
        )  # fmt: skip
        assert status == ENGINE_OK
        expected = ref_fully_connected(
            x.tolist(), w.tolist(), None if bias is None else bias.tolist(), n_out, in_off,
            w_off, out_off, mult.tolist(), shift.tolist(), lo, hi,
        )  # fmt: skip
        check_output(out, expected, f"fully_connected in={n_in} out={n_out}")
        total += n_out


# --------------------------------------------------------------------------------------------
# Argument checks


def test_invalid_arguments(lib):
    x = rand_s8(np.random.default_rng(9), 64)
    mult, shift, bad_shift = i32([1 << 30] * 8), i32([-8] * 8), i32([-8] * 7 + [32])
    out = out_buffer(64)
    px, po, pm, ps = ptr(x), ptr(out), ptr(mult), ptr(shift)

    def dw(**kw):
        args = dict(in_=px, len_in=8, ch=2, w=px, bias=None, k=3, stride=1, pad=1, ioff=0,
                    ooff=0, mult=pm, shift=ps, lo=-128, hi=127, out=po, len_out=8)  # fmt: skip
        args.update(kw)
        return lib.engine_depthwise_conv_s8(*args.values())

    assert dw() == ENGINE_OK
    for kw in [
        {"in_": None}, {"w": None}, {"mult": None}, {"shift": None}, {"out": None},
        {"len_in": 0}, {"ch": 0}, {"k": 0}, {"stride": 0}, {"pad": -1}, {"len_out": 0},
        {"lo": 5, "hi": 4}, {"lo": -129}, {"hi": 128}, {"shift": ptr(bad_shift), "ch": 8},
        {"len_in": 2**30, "ch": 4},
    ]:  # fmt: skip
        out[:] = FILL
        assert dw(**kw) == ENGINE_ERR_ARG, kw
        assert (out == FILL).all(), kw

    def c11(**kw):
        args = dict(in_=px, length=4, ic=2, w=px, bias=None, oc=2, ioff=0, ooff=0, mult=pm,
                    shift=ps, lo=-128, hi=127, out=po)  # fmt: skip
        args.update(kw)
        return lib.engine_conv_1x1_s8(*args.values())

    assert c11() == ENGINE_OK
    for kw in [{"in_": None}, {"w": None}, {"out": None}, {"length": 0}, {"ic": -1}, {"oc": 0}]:
        assert c11(**kw) == ENGINE_ERR_ARG, kw

    for pool in (lib.engine_max_pool_s8, lib.engine_avg_pool_s8):
        assert pool(px, 8, 2, 2, 2, 0, -128, 127, po, 4) == ENGINE_OK
        assert pool(None, 8, 2, 2, 2, 0, -128, 127, po, 4) == ENGINE_ERR_ARG
        assert pool(px, 8, 2, 2, 2, 0, -128, 127, None, 4) == ENGINE_ERR_ARG
        assert pool(px, 8, 2, 0, 2, 0, -128, 127, po, 4) == ENGINE_ERR_ARG  # window
        assert pool(px, 8, 2, 2, 0, 0, -128, 127, po, 4) == ENGINE_ERR_ARG  # stride
        assert pool(px, 8, 0, 2, 2, 0, -128, 127, po, 4) == ENGINE_ERR_ARG  # channels
        assert pool(px, 8, 2, 2, 2, 0, -128, 127, po, 0) == ENGINE_ERR_ARG  # len_out
        assert pool(px, 8, 2, 2, 2, 0, 10, 9, po, 4) == ENGINE_ERR_ARG  # act range
    # avg pool: the first window entirely in the padding, or the last one past the end
    assert lib.engine_avg_pool_s8(px, 8, 2, 2, 1, 2, -128, 127, po, 4) == ENGINE_ERR_ARG
    assert lib.engine_avg_pool_s8(px, 8, 2, 2, 2, 0, -128, 127, po, 5) == ENGINE_ERR_ARG
    # ... where max pool gives clamp(-128)
    out[:] = FILL
    assert lib.engine_max_pool_s8(px, 8, 2, 2, 2, 0, -100, 127, po, 5) == ENGINE_OK
    assert out[8:10].tolist() == [-100, -100]

    add_ok = (0, 1 << 30, -1, 0, 1 << 30, -1, 20, 0, 1 << 30, -1, -128, 127)
    assert lib.engine_add_s8(px, px, 8, *add_ok, po) == ENGINE_OK
    assert lib.engine_add_s8(None, px, 8, *add_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_add_s8(px, None, 8, *add_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_add_s8(px, px, 8, *add_ok, None) == ENGINE_ERR_ARG
    assert lib.engine_add_s8(px, px, 0, *add_ok, po) == ENGINE_ERR_ARG
    for index, value in [(2, 1), (5, -32), (6, -1), (6, 32), (9, 1)]:  # shifts out of range
        args = list(add_ok)
        args[index] = value
        assert lib.engine_add_s8(px, px, 8, *args, po) == ENGINE_ERR_ARG, (index, value)

    fc_mult = np.full(4, 1 << 30, dtype=np.int32)
    fc_shift = np.full(4, -8, dtype=np.int32)
    fc_ok = (0, 0, 0, ptr(fc_mult), ptr(fc_shift), -128, 127)
    assert lib.engine_fully_connected_s8(px, 8, px, None, 4, *fc_ok, po) == ENGINE_OK
    assert lib.engine_fully_connected_s8(None, 8, px, None, 4, *fc_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 8, None, None, 4, *fc_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 8, px, None, 4, *fc_ok, None) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 0, px, None, 4, *fc_ok, po) == ENGINE_ERR_ARG
    assert lib.engine_fully_connected_s8(px, 8, px, None, 0, *fc_ok, po) == ENGINE_ERR_ARG
    assert (
        lib.engine_fully_connected_s8(
            px, 8, px, None, 4, 0, 0, 0, None, ptr(fc_shift), -128, 127, po
        )
        == ENGINE_ERR_ARG
    )
    bad_shift = np.array([-8, -8, 32, -8], dtype=np.int32)  # one channel out of range
    bad_fc = (0, 0, 0, ptr(fc_mult), ptr(bad_shift), -128, 127)
    assert lib.engine_fully_connected_s8(px, 8, px, None, 4, *bad_fc, po) == ENGINE_ERR_ARG


# --------------------------------------------------------------------------------------------
# Layout of the sources and the Cortex-M4 build


def test_one_kernel_per_file_no_float():
    assert sorted(p.name for p in SOURCES) == KERNEL_FILES
    for path in [*SOURCES, *KERNELS.glob("*.h"), *INCLUDE.glob("engine_*.h")]:
        code = re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(), flags=re.S)
        assert not re.search(r"\b(float|double|malloc|calloc|realloc|free|printf)\b", code), path


def test_builds_for_cortex_m4(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    for src in SOURCES:
        obj = tmp_path / f"{src.stem}.o"
        cmd = ["arm-none-eabi-gcc", *ARM_M4_CFLAGS, f"-I{INCLUDE}", "-c", str(src), "-o", str(obj)]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert run.returncode == 0 and run.stderr == "", f"{' '.join(cmd)}\n{run.stderr}"
        # Soft-float build: any floating point would show up as a libgcc helper call.
        soft = tmp_path / f"{src.stem}.soft.o"
        cmd = [
            "arm-none-eabi-gcc",
            *[f for f in ARM_M4_CFLAGS if not f.startswith(("-mfloat-abi", "-mfpu"))],
            "-mfloat-abi=soft",
            f"-I{INCLUDE}",
            "-c",
            str(src),
            "-o",
            str(soft),
        ]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        nm = shutil.which("arm-none-eabi-nm")
        if nm:
            undefined = subprocess.run(
                [nm, "-u", str(soft)], capture_output=True, text=True, check=True
            ).stdout
            assert not re.search(r"__aeabi_[fdlu]|__\w*[sd]f\w*", undefined), (src, undefined)
