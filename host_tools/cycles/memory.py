"""Memory settings of the cycle estimate (memory.ini beside this file, or a board profile that
`host_tools calibrate` wrote): the flash caches the trace simulates and the stall of each miss."""

from __future__ import annotations

import configparser
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from .errors import CyclesError

STALL_KEYS = ("seq_miss_cycles", "nonseq_miss_cycles", "dmiss_cycles")
CACHE_KEYS = ("icache_lines", "icache_line_bytes", "dcache_lines", "dcache_line_bytes")


class MemorySettingError(CyclesError):
    """A memory setting is unknown or malformed; says which file and key."""


@dataclass(frozen=True)
class MemorySetting:
    name: str
    description: str
    icache_lines: int
    icache_line_bytes: int
    dcache_lines: int
    dcache_line_bytes: int
    seq_miss_cycles: float
    nonseq_miss_cycles: float
    dmiss_cycles: float

    @property
    def geometry(self) -> tuple[int, int, int, int]:
        return tuple(getattr(self, k) for k in CACHE_KEYS)

    def stalls(self, imiss_seq: int, imiss_nonseq: int, dmiss: int) -> float:
        return (
            self.seq_miss_cycles * imiss_seq
            + self.nonseq_miss_cycles * imiss_nonseq
            + self.dmiss_cycles * dmiss
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(text: str, source: str) -> dict[str, MemorySetting]:
    cp = configparser.ConfigParser(inline_comment_prefixes=None)
    try:
        cp.read_string(text, source=source)
    except configparser.Error as e:
        raise MemorySettingError(f"{source}: {e}") from e
    out = {}
    for name in cp.sections():
        s = cp[name]
        try:
            values = {k: int(s[k]) for k in CACHE_KEYS}
            values |= {k: float(s[k]) for k in STALL_KEYS}
            description = s["description"]
        except KeyError as e:
            raise MemorySettingError(f"{source}, [{name}]: missing key {e}") from None
        except ValueError as e:
            raise MemorySettingError(f"{source}, [{name}]: {e}") from None
        for k in ("icache_lines", "dcache_lines"):
            if not 0 <= values[k] <= 64:
                raise MemorySettingError(f"{source}, [{name}]: {k} must be 0-64 (got {values[k]})")
        for k in ("icache_line_bytes", "dcache_line_bytes"):
            if values[k] <= 0 or values[k] & (values[k] - 1):
                raise MemorySettingError(f"{source}, [{name}]: {k} must be a power of two")
        out[name] = MemorySetting(name, description, **values)
    return out


def load_settings(profile: str | Path | None = None) -> dict[str, MemorySetting]:
    """The shipped settings, and the settings of a board profile file if given (a profile's
    setting replaces a shipped one of the same name)."""
    text = (resources.files("host_tools.cycles") / "memory.ini").read_text()
    settings = _parse(text, "host_tools/cycles/memory.ini")
    if profile is not None:
        path = Path(profile)
        try:
            settings |= _parse(path.read_text(), str(path))
        except OSError as e:
            raise MemorySettingError(f"board profile {path}: {e.strerror}") from None
    return settings


def write_profile(path: str | Path, setting: MemorySetting, comment: str) -> Path:
    cp = configparser.ConfigParser()
    cp[setting.name] = {k: str(v) for k, v in setting.to_dict().items() if k != "name"}
    path = Path(path)
    with open(path, "w") as f:
        f.write("".join(f"; {line}\n" for line in comment.splitlines()))
        cp.write(f)
    return path
