"""The firmware's engine compiled for this machine (gcc -> shared library), called via ctypes:
how the converter proves the C engine equals TFLite Micro before any board is involved."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np

#: The engine's C sources are not part of the Python package: they are read from the source
#: checkout this module sits in (firmware/engine beside converter/).
REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "firmware" / "engine"
CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC"]
#: The Cortex-M4F build of the engine (arm-none-eabi-gcc).
ARM_M4_CFLAGS = [
    "-std=c11",
    "-O2",
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
    "-Wall",
    "-Wextra",
    "-Werror",
]


def engine_kernel_sources() -> list[Path]:
    """The engine's kernel sources (firmware/engine/kernels/*.c) from the source checkout;
    FileNotFoundError saying so when the converter runs from an installed package without it."""
    kernels = ENGINE / "kernels"
    sources = sorted(kernels.glob("*.c"))
    if not (ENGINE / "include").is_dir() or not sources:
        raise FileNotFoundError(
            f"the firmware engine's C sources are not at {kernels} (and {ENGINE / 'include'}): "
            "checking the generated engine against TFLite Micro compiles them, which needs a "
            "source checkout of the repository (the installed converter package does not "
            "contain firmware/)"
        )
    return sources


class NativeEngine:
    """engine_model.c of ``model_dir`` and the engine's kernels, compiled by the host gcc into
    ``build_dir``/libengine_model.so and loaded."""

    def __init__(self, model_dir: Path, build_dir: Path):
        sources = [*engine_kernel_sources(), model_dir / "engine_model.c"]
        build_dir.mkdir(parents=True, exist_ok=True)
        lib = build_dir / "libengine_model.so"
        cmd = [
            "gcc",
            *CFLAGS,
            f"-I{ENGINE / 'include'}",
            f"-I{model_dir}",
            "-o",
            str(lib),
            *map(str, sources),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"compiling the engine failed:\n{' '.join(cmd)}\n{done.stderr}")
        self._lib = ctypes.CDLL(str(lib))
        self._run = self._lib.engine_model_run_s8
        self._run.restype = ctypes.c_int
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    def run(self, x_int8: np.ndarray, n_out: int = 5) -> np.ndarray:
        """int8 (n, rows, time) -> int8 (n, n_out)."""
        out = np.zeros((len(x_int8), n_out), np.int8)
        for i, x in enumerate(np.ascontiguousarray(x_int8, dtype=np.int8)):
            status = self._run(x.ctypes.data, out[i].ctypes.data)
            if status != 0:
                raise RuntimeError(f"engine_model_run_s8 returned status {status} on input {i}")
        return out


def first_mismatches(actual: np.ndarray, expected: np.ndarray, limit: int = 5) -> list[str]:
    """'index i: actual [...] expected [...]' for the first rows that differ."""
    bad = np.flatnonzero((actual != expected).any(axis=1))
    return [
        f"index {i}: actual {actual[i].tolist()} expected {expected[i].tolist()}"
        for i in bad[:limit]
    ]
