"""Test vectors for the on-target unit tests (firmware/test): inputs the board regenerates from a
seed, and what TFLite Micro and the Python preprocessing make of them.

``python -m converter vectors`` (defaults: --model models/ulw_sleepnet
--out firmware/test/test_target/vectors.h)
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

import numpy as np

from sleepdata.normalise import Normaliser
from sleepdata.tflm import TflmRunner
from training.model import load_model

from .codegen import banner, model_hash

N_INPUTS = 4
CHANNELS = 4
SAMPLES = 3000


def xorshift32(seed: int, n: int) -> np.ndarray:
    """n successive states of Marsaglia's xorshift32 from ``seed`` (the C side is identical)."""
    out = np.empty(n, dtype=np.uint32)
    x = seed & 0xFFFFFFFF
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x
    return out


def int8_input(seed: int) -> np.ndarray:
    """The model input of vector ``seed``: (4, 3000) int8, the top byte of each state."""
    return (
        (xorshift32(seed, CHANNELS * SAMPLES) >> 24)
        .astype(np.uint8)
        .view(np.int8)
        .reshape(CHANNELS, SAMPLES)
    )


def int16_epoch(seed: int) -> np.ndarray:
    """A wire epoch of vector ``seed``: (4, 3000) int16 in [-4096, 4095] plus a channel offset,
    so both the clamp and the mean removal are exercised."""
    raw = (xorshift32(seed, CHANNELS * SAMPLES) >> 19).astype(np.int32) - 4096
    raw = raw.reshape(CHANNELS, SAMPLES) + np.array([[300], [-700], [0], [2500]])
    return raw.astype(np.int16)


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def write_vectors(model_dir: str | Path, out: str | Path) -> Path:
    """Write the C header of test vectors for ``model_dir``'s model_int8.tflite to ``out``."""
    model_dir = Path(model_dir)
    flat = (model_dir / "model_int8.tflite").read_bytes()
    runner = TflmRunner(flat)
    seeds = [0x1234 + 977 * k for k in range(N_INPUTS)]
    scores = runner.run(np.stack([int8_input(s) for s in seeds]))
    norm = Normaliser.from_dict(load_model(model_dir)[1]["normalisation"])
    pre = [fnv1a32(norm.to_int8(int16_epoch(s)[None])[0].tobytes()) for s in seeds]
    digest = hashlib.sha256(flat).digest()[:8]
    # The tools whose results the vectors hold: TFLM's scores, numpy's preprocessing reference.
    tools = {"tflite-micro": version("tflite-micro"), "numpy": np.__version__}
    head = banner(model_hash(flat), tools, generator="python -m converter vectors")
    rows = ",\n".join(
        f"    {{0x{s:08X}u, {{{', '.join(str(int(v)) for v in sc)}}}, 0x{p:08X}u}}"
        for s, sc, p in zip(seeds, scores, pre, strict=True)
    )
    text = f"""{head}
/* On-target test vectors: the board regenerates each input from its seed (xorshift32) and
 * compares its engine with TFLite Micro's scores and its preprocessing with the Python
 * reference (FNV-1a of the int8 output). */
#ifndef TEST_VECTORS_H
#define TEST_VECTORS_H

#include <stdint.h>

#define TEST_VECTORS {len(seeds)}
static const uint8_t test_vectors_model_hash8[8] = {{{", ".join(f"0x{b:02x}" for b in digest)}}};
static const struct {{
    uint32_t seed;
    int8_t scores[5];   /* TFLite Micro, int8 input = top byte of each xorshift32 state */
    uint32_t preprocess_fnv; /* FNV-1a of preprocess(int16 epoch from the same seed) */
}} test_vectors[TEST_VECTORS] = {{
{rows},
}};

#endif /* TEST_VECTORS_H */
"""
    out = Path(out)
    out.write_text(text)
    return out
