"""The firmware's int8 kernels (firmware/engine/kernels) compiled by the host gcc into a shared
library and called through ctypes, for the kernel tests (test_requant.py, test_kernels.py,
test_fused_kernels.py); their C helpers live in firmware/test/kernels/."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ..conftest import REPO

ENGINE = REPO / "firmware" / "engine"
INCLUDE = ENGINE / "include"
KERNELS = ENGINE / "kernels"
SOURCES = sorted(KERNELS.glob("*.c"))
#: C written for these tests (compiled by them, not part of the firmware).
TEST_C = REPO / "firmware" / "test" / "kernels"

HOST_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]

ENGINE_OK, ENGINE_ERR_ARG = 0, 1
GUARD = 16  # bytes after every output buffer that a kernel must not touch
FILL = 0x5A  # their (and untouched outputs') value

# Argument types, one letter each: p pointer, i int, w int32_t.
CTYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int, "w": ctypes.c_int32}
SIGNATURES = {
    "engine_depthwise_conv_s8": "piippiiiwwppwwpi",
    "engine_conv_1x1_s8": "piippiwwppwwp",
    "engine_max_pool_s8": "piiiiiwwpi",
    "engine_avg_pool_s8": "piiiiiwwpi",
    "engine_add_s8": "ppiwwiwwiiwwiwwp",
    "engine_fully_connected_s8": "pippiwwwppwwp",
    # requant_shim.c: element-wise wrappers of the static-inline helpers
    "shim_srdhm": "pppi",
    "shim_rdbp": "pppi",
    "shim_mbqm": "ppppi",
    "shim_mbqm_lt1": "ppppi",
    "shim_rdbp_fast": "pppi",
    "shim_rq_fast": "pppppi",
    "shim_rq_fast_lt1": "ppppi",
}


class SeparableUnitC(ctypes.Structure):
    """engine_separable_s8_t."""

    _fields_ = [
        *[(n, ctypes.c_int) for n in ("in_channels", "out_channels", "kernel", "stride", "pad")],
        *[(n, ctypes.c_void_p) for n in ("dw_filter", "dw_bias", "dw_mult", "dw_shift")],
        *[(n, ctypes.c_int32) for n in ("dw_in_off", "dw_out_off", "dw_lo", "dw_hi")],
        *[(n, ctypes.c_void_p) for n in ("pw_filter", "pw_bias", "pw_mult", "pw_shift")],
        *[(n, ctypes.c_int32) for n in ("pw_out_off", "pw_lo", "pw_hi")],
        ("pw_lut", ctypes.c_void_p),
    ]


class MaxPool2C(ctypes.Structure):
    """engine_max_pool2_s8_t."""

    _fields_ = [("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32)]


ADD_FIELDS = ("a_off", "a_mult", "a_shift", "b_off", "b_mult", "b_shift", "left_shift",
              "out_off", "out_mult", "out_shift", "lo", "hi")  # fmt: skip


class AddParamsC(ctypes.Structure):
    """engine_add_s8_params_t."""

    _fields_ = [(n, ctypes.c_int32) for n in ADD_FIELDS]


def build_library(out: Path) -> ctypes.CDLL:
    """Every kernel and requant_shim.c in one shared library in ``out``, argument types set."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    so = out / "libengine_kernels.so"
    cmd = ["gcc", *HOST_FLAGS, "-shared", "-fPIC", f"-I{INCLUDE}", *map(str, SOURCES)]
    cmd += [str(TEST_C / "requant_shim.c"), "-o", str(so)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"{' '.join(cmd)}\n{run.stdout}{run.stderr}"
    assert run.stderr == "", run.stderr
    library = ctypes.CDLL(str(so))
    for name, argtypes in SIGNATURES.items():
        fn = getattr(library, name)
        fn.argtypes = [CTYPES[c] for c in argtypes]
        fn.restype = None if name.startswith("shim_") else ctypes.c_int
    unit, p, i = ctypes.POINTER(SeparableUnitC), ctypes.c_void_p, ctypes.c_int
    library.engine_separable_s8.argtypes = [unit, p, i, i, ctypes.POINTER(MaxPool2C), p, i]
    library.engine_shortcut_add_s8.argtypes = [
        unit, unit, ctypes.POINTER(AddParamsC), p, i, i, p, p, i, p, i,
    ]  # fmt: skip
    for name in ("engine_separable_s8", "engine_shortcut_add_s8"):
        getattr(library, name).restype = ctypes.c_int
    return library


def ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def out_buffer(n: int) -> np.ndarray:
    """n int8 outputs followed by GUARD bytes, all FILL."""
    return np.full(n + GUARD, FILL, dtype=np.int8)


def i32(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int32)


def check_equal(actual, expected, what: str) -> None:
    """Exact equality; lists the first mismatches (index, actual, expected)."""
    actual = [int(v) for v in actual]
    expected = [int(v) for v in expected]
    assert len(actual) == len(expected), f"{what}: {len(actual)} values, {len(expected)} expected"
    bad = [i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if a != e]
    if bad:
        lines = [f"{what}: {len(bad)} of {len(expected)} values differ"]
        lines += [f"  index {i}: actual {actual[i]}, expected {expected[i]}" for i in bad[:10]]
        pytest.fail("\n".join(lines))


def check_output(buf: np.ndarray, expected: list[int], what: str) -> None:
    """buf (from out_buffer) holds expected, and its guard bytes are untouched."""
    n = len(expected)
    check_equal(buf[:n], expected, what)
    assert (buf[n:] == FILL).all(), f"{what}: wrote past the end of the output"
