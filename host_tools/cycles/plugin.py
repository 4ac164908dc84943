"""The QEMU plugin that records an emulated board's instruction stream (trace_plugin.c): built
on first use with the host's C compiler into a per-user cache, and its configuration file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from .elfimage import ElfImage
from .errors import CyclesError

# SYST_CVR, the SysTick current-value register (Armv7-M ARM B3.3.2): the board counter's reads
# (firmware/boards/common/systick.h) end the plugin's segments.
SYST_CVR = 0xE000E018
# The firmware's per-layer totals (firmware/app/profile.c): the store into profile_counts[i]
# right after a layer's counter read names the layer the segment before it belongs to.
PROFILE_COUNTS = "profile_counts"


class PluginError(CyclesError):
    """The plugin cannot be built or configured; says what to install or pass."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ulw-sleepnet-mcu"


def build_plugin(cache: Path | None = None) -> Path:
    """The plugin's shared library, compiled once per source version (CC or cc/gcc)."""
    src = resources.files("host_tools.cycles")
    code = (src / "trace_plugin.c").read_bytes()
    header = (src / "qemu_plugin_api.h").read_bytes()
    digest = hashlib.sha256(code + header).hexdigest()[:16]
    cache = cache or _cache_dir()
    lib = cache / f"trace_plugin-{digest}.so"
    if lib.exists():
        return lib
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PluginError(
            "the cycle estimate builds a small QEMU plugin and needs a C compiler: "
            "sudo apt-get install gcc (or set CC)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with resources.as_file(src / "trace_plugin.c") as c_file:
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        cmd = [cc, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(tmp), str(c_file)]
        r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise PluginError(f"building the QEMU plugin failed ({' '.join(cmd)}):\n{r.stderr}")
    tmp.replace(lib)
    return lib


def write_config(
    path: Path, elf: ElfImage, out: Path, memory, watch: str | None = PROFILE_COUNTS
) -> Path:
    """The plugin's configuration for ``elf`` under the memory setting ``memory`` (its flash
    caches; memory.MemorySetting), recording into ``out``; stores into the data object
    ``watch`` are reported (None: no such object)."""
    lo, hi = elf.flash_range()
    lines = [f"out {out}", f"boundary {SYST_CVR:x}", f"flash {lo:x} {hi:x}"]
    if watch is not None:
        w_lo, w_hi = elf.object_range(watch)
        lines.append(f"watch {w_lo:x} {w_hi:x}")
    lines += [f"handler {h.lo:x} {h.hi:x}" for h in elf.handlers()]
    lines.append(f"icache {memory.icache_lines} {memory.icache_line_bytes}")
    lines.append(f"dcache {memory.dcache_lines} {memory.dcache_line_bytes}")
    if " " in str(out) or "," in str(out):
        raise PluginError(f"the trace file path must not contain spaces or commas: {out}")
    path.write_text("\n".join(lines) + "\n")
    return path


def qemu_args(plugin: Path, config: Path) -> list[str]:
    if "," in str(plugin) or "," in str(config):
        raise PluginError("QEMU plugin paths must not contain commas")
    return ["-plugin", f"{plugin},cfg={config}"]
