"""The fused kernels (engine_separable_s8, engine_shortcut_add_s8) against the composition of
the unfused kernels they replace, bit for bit, on random shapes and parameters covering both
arithmetic paths (fast and exact), the lookup-table path, the in-place rule and the argument
checks."""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest

from converter.fusion import SHORTCUT_SCRATCH_BYTES, pointwise_lut

from .fused_units import (
    inplace_lead_bytes,
    rand_add_params,
    rand_unit,
    same_padding_len,
    unfused_pool,
)
from .kernel_lib import (
    ENGINE_ERR_ARG,
    ENGINE_OK,
    FILL,
    GUARD,
    AddParamsC,
    MaxPool2C,
    check_equal,
    check_output,
    i32,
    out_buffer,
    ptr,
)
from .tflm_reference import rand_act, rand_s8


@pytest.mark.parametrize("seed", [20, 21, 22, 23])
def test_separable_equals_composition(lib, seed):
    rng = np.random.default_rng(seed)
    total, paths = 0, set()
    while total < 20_000:
        c_in, c_out = (int(v) for v in rng.integers(1, [21, 21]))
        if rng.random() < 0.3:
            c_in, c_out = int(rng.choice([1, 8, 16, 32])), int(rng.choice([8, 16, 32]))
        kernel, stride = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        pad = int(rng.integers(0, kernel))
        len_in = int(rng.integers(1, 70))
        len_mid, pad_same = same_padding_len(len_in, kernel, stride, pad, rng)
        pool_kind = rng.choice(["none", "same", "valid"])
        if pool_kind == "valid" and len_mid < 2:
            pool_kind = "same"
        unit = rand_unit(rng, c_in, c_out, kernel, stride, pad_same,
                         realistic=rng.random() < 0.6)  # fmt: skip
        x = rand_s8(rng, len_in * c_in)
        y = unit.run_unfused(lib, x, len_in, len_mid)
        pool, pool_act = None, (-128, 127)
        if pool_kind == "none":
            len_out, want = len_mid, y
        else:
            len_out = (len_mid + 1) // 2 if pool_kind == "same" else len_mid // 2
            pool_act = (-128, 127) if rng.random() < 0.7 else rand_act(rng)
            pool = MaxPool2C(*pool_act)
            want = unfused_pool(lib, y, len_mid, c_out, pool_act, len_out)
        out = out_buffer(len_out * c_out)
        struct = unit.struct()
        status = lib.engine_separable_s8(
            ctypes.byref(struct), ptr(x), len_in, len_mid,
            None if pool is None else ctypes.byref(pool), ptr(out), len_out,
        )  # fmt: skip
        assert status == ENGINE_OK
        what = (f"separable C={c_in}->{c_out} K={kernel} s={stride} pad={pad_same} "
                f"len={len_in}->{len_mid} pool={pool_kind}")  # fmt: skip
        check_output(out, want.tolist(), what)
        total += len(want)
        paths.add(unit.fast_layers(pool_act))
    assert {(True, True), (False, False)} <= paths, paths  # fast and exact paths both covered


@pytest.mark.parametrize("c_out", [4, 8])
def test_separable_pw_lut(lib, c_out):
    """The first unit's lookup-table path with a precomputed pw_lut (the converter's
    pointwise_lut, as the generated model passes it) equals the composition, and pointwise_lut
    equals engine_conv_1x1_s8 on every input value."""
    rng = np.random.default_rng(60 + c_out)
    for case in range(6):
        unit = rand_unit(rng, 1, c_out, 3, 1, 1, realistic=True)
        lut = np.array(pointwise_lut(unit.pw_params()), np.int8)
        values = np.arange(-128, 128, dtype=np.int8)
        want_lut = out_buffer(256 * c_out)
        status = lib.engine_conv_1x1_s8(
            ptr(values), 256, 1, ptr(unit.pw_w), ptr(unit.pw_bias), c_out, -unit.dw_out_off,
            unit.pw_out_off, ptr(unit.pw_mult), ptr(unit.pw_shift), *unit.pw_act, ptr(want_lut),
        )  # fmt: skip
        assert status == ENGINE_OK
        check_equal(lut, want_lut[: 256 * c_out], f"pointwise_lut C=1->{c_out}")
        len_in = int(rng.integers(1, 700)) if case else 3000
        x = rand_s8(rng, len_in)
        len_out = (len_in + 1) // 2
        want = unfused_pool(lib, unit.run_unfused(lib, x, len_in, len_in), len_in, c_out,
                            (-128, 127), len_out)  # fmt: skip
        pool = MaxPool2C(-128, 127)
        for table in (lut, None):
            out = out_buffer(len_out * c_out)
            struct = unit.struct(table)
            status = lib.engine_separable_s8(ctypes.byref(struct), ptr(x), len_in, len_in,
                                             ctypes.byref(pool), ptr(out), len_out)  # fmt: skip
            assert status == ENGINE_OK
            check_output(out, want.tolist(), f"lut C=1->{c_out} len={len_in} {table is None}")


def test_separable_model_shapes_and_in_place(lib):
    """The model's units (k3 s1 pad1 + pool 2/2, SAME, odd lengths), in place at the smallest
    allowed lead, equal the composition; one byte less of lead is refused."""
    rng = np.random.default_rng(30)
    for c_in, c_out, len_in in [(1, 8, 3000), (8, 8, 1500), (8, 16, 750), (16, 16, 375),
                                (16, 32, 188), (32, 32, 94), (8, 8, 7), (16, 16, 5)]:  # fmt: skip
        unit = rand_unit(rng, c_in, c_out, 3, 1, 1, realistic=True)
        x = rand_s8(rng, len_in * c_in)
        len_out = (len_in + 1) // 2
        want = unfused_pool(lib, unit.run_unfused(lib, x, len_in, len_in), len_in, c_out,
                            (-128, 127), len_out)  # fmt: skip
        lead = inplace_lead_bytes(c_in, c_out, 2, 1, 1, len_out)
        n_in, n_out = len_in * c_in, len_out * c_out
        if c_out <= 2 * c_in:  # the output fits in the input's place
            buf = np.full(lead + n_in + GUARD, FILL, np.int8)
            buf[lead : lead + n_in] = x
            struct, pool = unit.struct(), MaxPool2C(-128, 127)
            base = buf.ctypes.data
            status = lib.engine_separable_s8(ctypes.byref(struct), base + lead, len_in, len_in,
                                             ctypes.byref(pool), base, len_out)  # fmt: skip
            assert status == ENGINE_OK
            check_equal(buf[:n_out], want, f"in place C={c_in}->{c_out} len={len_in} d={lead}")
            if lead > 0:
                status = lib.engine_separable_s8(
                    ctypes.byref(struct), base + lead, len_in, len_in, ctypes.byref(pool),
                    base + 1, len_out,
                )  # fmt: skip
                assert status == ENGINE_ERR_ARG
        out = out_buffer(n_out)
        struct, pool = unit.struct(), MaxPool2C(-128, 127)
        status = lib.engine_separable_s8(ctypes.byref(struct), ptr(x), len_in, len_in,
                                         ctypes.byref(pool), ptr(out), len_out)  # fmt: skip
        assert status == ENGINE_OK
        check_output(out, want.tolist(), f"model unit C={c_in}->{c_out} len={len_in}")


def test_separable_one_input_channel_table_path(lib):
    """One input channel, 4 or 8 outputs, pooled: the 256-row table and bytewise max path."""
    rng = np.random.default_rng(32)
    for case in range(200):
        c_out = 4 if case % 3 == 0 else 8
        len_in = int(rng.integers(1, 300)) if case % 4 else int(rng.integers(1, 6))
        same = case % 2 == 0 or len_in < 2
        len_out = (len_in + 1) // 2 if same else len_in // 2
        unit = rand_unit(rng, 1, c_out, 3, 1, 1, realistic=True)
        x = rand_s8(rng, len_in)
        want = unfused_pool(lib, unit.run_unfused(lib, x, len_in, len_in), len_in, c_out,
                            (-128, 127), len_out)  # fmt: skip
        out = out_buffer(len_out * c_out)
        struct, pool = unit.struct(), MaxPool2C(-128, 127)
        status = lib.engine_separable_s8(ctypes.byref(struct), ptr(x), len_in, len_in,
                                         ctypes.byref(pool), ptr(out), len_out)  # fmt: skip
        assert status == ENGINE_OK
        check_output(out, want.tolist(), f"table path C=1->{c_out} len={len_in} same={same}")


def test_separable_in_place_rule_random(lib):
    """Random geometries in place at exactly the documented lead: equal to the composition."""
    rng = np.random.default_rng(31)
    done = refused = 0
    while done < 300:
        c_in, c_out = (int(v) for v in rng.integers(1, [17, 17]))
        kernel, stride = int(rng.integers(1, 5)), int(rng.integers(1, 3))
        pad = int(rng.integers(0, kernel))
        len_in = int(rng.integers(1, 80))
        len_mid = (len_in + stride - 1) // stride
        pooled = rng.random() < 0.6
        len_out = (len_mid + 1) // 2 if pooled else len_mid
        q = 2 if pooled else 1
        lead = inplace_lead_bytes(c_in, c_out, q, stride, pad, len_out)
        n_in, n_out = len_in * c_in, len_out * c_out
        if lead + n_in < n_out:  # the output would not overlap its input: not in place
            continue
        unit = rand_unit(rng, c_in, c_out, kernel, stride, pad, realistic=rng.random() < 0.7)
        x = rand_s8(rng, n_in)
        want = unit.run_unfused(lib, x, len_in, len_mid)
        if pooled:
            want = unfused_pool(lib, want, len_mid, c_out, (-128, 127), len_out)
        buf = np.full(lead + n_in + GUARD, FILL, np.int8)
        buf[lead : lead + n_in] = x
        struct, pool = unit.struct(), MaxPool2C(-128, 127)
        status = lib.engine_separable_s8(
            ctypes.byref(struct), buf.ctypes.data + lead, len_in, len_mid,
            ctypes.byref(pool) if pooled else None, buf.ctypes.data, len_out,
        )  # fmt: skip
        assert status == ENGINE_OK
        check_equal(buf[:n_out], want, f"in place C={c_in}->{c_out} K={kernel} s={stride} d={lead}")
        if lead > 0:  # one byte less would overwrite a row still to be read: refused
            status = lib.engine_separable_s8(
                ctypes.byref(struct), buf.ctypes.data + lead, len_in, len_mid,
                ctypes.byref(pool) if pooled else None, buf.ctypes.data + 1, len_out,
            )  # fmt: skip
            assert status == ENGINE_ERR_ARG, (c_in, c_out, kernel, stride, pad, len_out, lead)
            refused += 1
        done += 1
    assert refused > 50


@pytest.mark.parametrize("c_out", [4, 8])
def test_one_unit_shortcut_pw_lut(lib, c_out):
    """A composed first shortcut stream (one unit, one input channel) with the converter's
    pw_lut takes the lookup-table path: equal to the unit and the ADD run one after the other,
    with the table and without it (the tile path), at the strides a composed stream has."""
    rng = np.random.default_rng(70 + c_out)
    for case in range(8):
        stride = 4 if case % 2 == 0 else int(rng.integers(1, 5))
        unit = rand_unit(rng, 1, c_out, 1, stride, 0, realistic=case < 6)
        lut = np.array(pointwise_lut(unit.pw_params()), np.int8)
        len_in = int(rng.integers(1, 1200)) if case else 3000
        len_out = (len_in + stride - 1) // stride
        x = rand_s8(rng, len_in)
        add = rand_add_params(rng, True)
        main = rand_s8(rng, len_out * c_out)
        want = out_buffer(len_out * c_out)
        s = unit.run_unfused(lib, x, len_in, len_out)
        assert lib.engine_add_s8(ptr(main), ptr(s), len_out * c_out, *add, ptr(want)) == 0
        scratch = np.full(SHORTCUT_SCRATCH_BYTES, FILL, np.int8)
        for table in (lut, None):
            out = out_buffer(len_out * c_out)
            struct, params = unit.struct(table), AddParamsC(*add)
            status = lib.engine_shortcut_add_s8(
                ctypes.byref(struct), None, ctypes.byref(params), ptr(x), len_in, len_out,
                ptr(main), ptr(out), len_out, ptr(scratch), SHORTCUT_SCRATCH_BYTES,
            )  # fmt: skip
            assert status == ENGINE_OK
            what = f"one-unit lut C=1->{c_out} s={stride} len={len_in} table={table is not None}"
            check_output(out, want[: len_out * c_out].tolist(), what)


@pytest.mark.parametrize(("seed", "units"), [(40, 2), (41, 2), (42, 2), (43, 1), (44, 1)])
def test_shortcut_add_equals_composition(lib, seed, units):
    """Two units, or one (second NULL: the converter's composed shortcut stream), + the ADD."""
    rng = np.random.default_rng(seed)
    total = 0
    while total < 15_000:
        c_in, c_mid, c_out = (int(v) for v in rng.integers(1, [21, 21, 21]))
        if rng.random() < 0.3:
            c_in = int(rng.choice([1, 8, 16]))
            c_mid = c_out = 2 * c_in if c_in > 1 else 8
        s1, s2 = int(rng.integers(1, 5 if units == 1 else 4)), int(rng.integers(1, 4))
        len_in = int(rng.integers(1, 90))
        len_first = (len_in + s1 - 1) // s1
        realistic = rng.random() < 0.6
        first = rand_unit(rng, c_in, c_mid, 1, s1, 0, realistic=realistic)
        x = rand_s8(rng, len_in * c_in)
        s = first.run_unfused(lib, x, len_in, len_first)
        if units == 2:
            len_out = (len_first + s2 - 1) // s2
            second = rand_unit(rng, c_mid, c_out, 1, s2, 0, realistic=realistic)
            s = second.run_unfused(lib, s, len_first, len_out)
            what = f"shortcut C={c_in}->{c_mid}->{c_out} s={s1},{s2} len={len_in}"
        else:
            len_out, c_out, second = len_first, c_mid, None
            what = f"one-unit shortcut C={c_in}->{c_out} s={s1} len={len_in}"
        add = rand_add_params(rng, realistic)
        main = rand_s8(rng, len_out * c_out)
        want = out_buffer(len_out * c_out)
        assert lib.engine_add_s8(ptr(main), ptr(s), len_out * c_out, *add, ptr(want)) == 0
        want = want[: len_out * c_out]
        structs = (first.struct(), None if second is None else second.struct(), AddParamsC(*add))
        args = [None if v is None else ctypes.byref(v) for v in structs]
        args += [ptr(x), len_in, len_first, ptr(main)]
        out = out_buffer(len_out * c_out)
        scratch = np.full(SHORTCUT_SCRATCH_BYTES, FILL, np.int8)
        tail = (ptr(scratch), SHORTCUT_SCRATCH_BYTES)
        assert lib.engine_shortcut_add_s8(*args, ptr(out), len_out, *tail) == ENGINE_OK
        check_output(out, want.tolist(), what)
        in_place = main.copy()  # out = main_in: element-wise in place
        args[-1] = ptr(in_place)
        assert lib.engine_shortcut_add_s8(*args, ptr(in_place), len_out, *tail) == ENGINE_OK
        check_equal(in_place, want, what + " in place")
        total += len(want)


def test_fused_invalid_arguments(lib):
    rng = np.random.default_rng(50)
    unit = rand_unit(rng, 8, 8, 3, 1, 1, realistic=True)
    x = rand_s8(rng, 64 * 8)
    out = out_buffer(64 * 8)
    pool = MaxPool2C(-128, 127)

    def sep(u=None, len_in=64, len_mid=64, pool_=pool, out_=None, len_out=32, in_=None):
        struct = (u or unit).struct()
        return lib.engine_separable_s8(
            ctypes.byref(struct), ptr(x) if in_ is None else in_, len_in, len_mid,
            None if pool_ is None else ctypes.byref(pool_), ptr(out) if out_ is None else out_,
            len_out,
        )  # fmt: skip

    assert sep() == ENGINE_OK
    assert sep(pool_=None, len_out=64) == ENGINE_OK
    assert sep(len_out=33) == ENGINE_ERR_ARG  # neither ceil nor floor of 64 / 2
    assert sep(pool_=None, len_out=32) == ENGINE_ERR_ARG
    assert sep(pool_=MaxPool2C(5, 4)) == ENGINE_ERR_ARG
    assert sep(len_in=0) == ENGINE_ERR_ARG
    assert sep(out_=x.ctypes.data + 1) == ENGINE_ERR_ARG  # out starts inside in
    assert lib.engine_separable_s8(None, ptr(x), 64, 64, None, ptr(out), 64) == ENGINE_ERR_ARG
    for field, value in [("in_channels", 0), ("in_channels", 65), ("out_channels", 0),
                         ("kernel", 0), ("stride", 0), ("pad_left", -1), ("dw_input_offset", 129),
                         ("dw_output_offset", -129), ("pw_output_offset", 200)]:  # fmt: skip
        bad = dataclasses.replace(unit)
        attr = {"in_channels": "c_in", "out_channels": "c_out", "pad_left": "pad",
                "dw_input_offset": "dw_in_off", "dw_output_offset": "dw_out_off",
                "pw_output_offset": "pw_out_off"}.get(field, field)  # fmt: skip
        setattr(bad, attr, value)
        assert sep(u=bad) == ENGINE_ERR_ARG, field
    bad = dataclasses.replace(unit, pw_shift=i32([-8] * 7 + [32]))
    assert sep(u=bad) == ENGINE_ERR_ARG
    bad = dataclasses.replace(unit, dw_act=(3, 2))
    assert sep(u=bad) == ENGINE_ERR_ARG
    bad = dataclasses.replace(unit, pw_w=None)
    assert sep(u=bad) == ENGINE_ERR_ARG
    assert (out[64 * 8 :] == FILL).all()

    first = rand_unit(rng, 8, 8, 1, 2, 0, realistic=True)
    second = rand_unit(rng, 8, 8, 1, 2, 0, realistic=True)
    add = AddParamsC(*rand_add_params(rng, True))
    main = rand_s8(rng, 16 * 8)

    scratch = np.zeros(SHORTCUT_SCRATCH_BYTES + 4, np.int8)
    scratch_ptr = (scratch.ctypes.data + 3) & ~3  # 4-byte aligned

    def short(f=first, s=second, len_in=64, len_first=32, len_out=16, out_=None,
              scratch_=scratch_ptr, scratch_bytes=SHORTCUT_SCRATCH_BYTES):  # fmt: skip
        sf, ss = f.struct(), None if s is None else s.struct()
        return lib.engine_shortcut_add_s8(
            ctypes.byref(sf), None if ss is None else ctypes.byref(ss), ctypes.byref(add), ptr(x),
            len_in, len_first,
            ptr(main), ptr(out) if out_ is None else out_, len_out, scratch_, scratch_bytes,
        )  # fmt: skip

    assert short() == ENGINE_OK
    assert short(out_=ptr(main)) == ENGINE_OK  # in place over main_in
    assert short(out_=main.ctypes.data + 1) == ENGINE_ERR_ARG  # partly over main_in
    assert short(out_=ptr(x)) == ENGINE_ERR_ARG  # over in
    assert short(f=dataclasses.replace(first, kernel=3, dw_w=rand_s8(rng, 24))) == ENGINE_ERR_ARG
    assert short(s=dataclasses.replace(second, pad=1)) == ENGINE_ERR_ARG
    assert short(s=rand_unit(rng, 4, 8, 1, 2, 0, realistic=True)) == ENGINE_ERR_ARG  # 8 != 4
    assert short(len_out=17) == ENGINE_ERR_ARG  # reads past len_first
    one = rand_unit(rng, 8, 8, 1, 4, 0, realistic=True)  # one unit: second NULL
    assert short(f=one, s=None, len_first=16) == ENGINE_OK
    assert short(f=one, s=None, len_first=17, len_out=17) == ENGINE_ERR_ARG  # reads past len_in
    assert short(f=one, s=None, len_first=16, len_out=15) == ENGINE_ERR_ARG  # len_first != len_out
    assert short(len_first=16) == ENGINE_ERR_ARG
    assert short(len_in=48) == ENGINE_ERR_ARG  # reads past len_in
    assert short(scratch_bytes=SHORTCUT_SCRATCH_BYTES + 1) == ENGINE_OK
    assert short(scratch_=None) == ENGINE_ERR_ARG
    assert short(scratch_bytes=SHORTCUT_SCRATCH_BYTES - 1) == ENGINE_ERR_ARG  # too small
    assert short(scratch_=scratch_ptr + 1, scratch_bytes=4096) == ENGINE_ERR_ARG  # misaligned
    big = np.zeros(4096, np.int32)  # in, main_in or out inside the scratch
    assert short(scratch_=ptr(big), out_=big.ctypes.data + 100) == ENGINE_ERR_ARG
    assert short(scratch_=main.ctypes.data - 1024) == ENGINE_ERR_ARG  # ends inside main_in
