"""The fused kernels' DSP path: firmware/test/kernels/dsp_check.c (700 random fused cases and
100 fully connected layers, each fused output compared with the unfused composition) built for
the host (portable C) and for a Cortex-M4 in QEMU (SMLAD/SXTB16/SMMLAR paths); both builds
must find no difference and print the same checksum of every output."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .kernel_lib import HOST_FLAGS, INCLUDE, SOURCES, TEST_C


def test_dsp_path_equals_portable_path(tmp_path):
    """On a Cortex-M4 (QEMU mps2-an386, DSP extension: SMLAD, SXTB16, SMMLAR, SSAT, SEL) the
    fused kernels equal the unfused composition on 700 random shapes and parameters, and their
    outputs (and 100 fully connected layers') hash to the same checksum as the portable C build
    on this machine."""
    for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    sources = [str(p) for p in SOURCES] + [str(TEST_C / "dsp_check.c")]
    host = tmp_path / "host"
    cmd = ["gcc", *HOST_FLAGS, f"-I{INCLUDE}", *sources, "-o", str(host)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    want = subprocess.run([str(host)], capture_output=True, text=True, check=False)
    assert want.returncode == 0 and " bad=0 " in want.stdout, want.stdout

    elf = tmp_path / "m4.elf"
    cmd = [
        "arm-none-eabi-gcc", "-std=c11", "-O2", "-mcpu=cortex-m4", "-mthumb",
        "-mfloat-abi=soft", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}", *sources,
        "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
        f"-T{TEST_C / 'bare_m4.ld'}", "-o", str(elf),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    nm = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    assert "smlad" in nm and "smmlar" in nm and "sxtb16" in nm  # the DSP path was built
    got = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
         "-serial", "null", "-chardev", "stdio,id=semihosting",
         "-semihosting-config", "enable=on,target=native,chardev=semihosting",
         "-kernel", str(elf)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert got.returncode == 0, (got.stdout, got.stderr)
    assert got.stdout == want.stdout, (got.stdout, want.stdout)
