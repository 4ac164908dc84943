"""What the cycle estimate needs from a firmware ELF: the bytes at an address, the functions
(for handler ranges and per-function figures), the exception handlers of the vector table, and
the address range a flash-based board would hold in flash (code and constants)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from .errors import CyclesError


class ElfError(CyclesError):
    """The file is not a firmware ELF the estimate can use; says what is missing."""


@dataclass(frozen=True)
class Function:
    name: str
    lo: int  # first instruction (Thumb bit cleared)
    hi: int  # one past the last byte


class ElfImage:
    def __init__(self, path: str | Path):
        from elftools.elf.elffile import ELFFile

        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                elf = ELFFile(f)
                self._segments = [
                    (s["sh_addr"], s.data())
                    for s in elf.iter_sections()
                    if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 0x2  # SHF_ALLOC
                ]
                self._sections = {
                    s.name: (s["sh_addr"], s["sh_addr"] + s["sh_size"])
                    for s in elf.iter_sections()
                    if s["sh_flags"] & 0x2
                }
                symtab = elf.get_section_by_name(".symtab")
                if symtab is None:
                    raise ElfError(f"{self.path}: no symbol table (was the ELF stripped?)")
                funcs, objects = [], {}
                for sym in symtab.iter_symbols():
                    kind = sym["st_info"]["type"]
                    if kind == "STT_FUNC" and sym["st_size"] > 0:
                        lo = sym["st_value"] & ~1
                        funcs.append(Function(sym.name, lo, lo + sym["st_size"]))
                    elif kind == "STT_OBJECT":
                        objects[sym.name] = (sym["st_value"], sym["st_size"])
        except (OSError, ValueError) as e:
            raise ElfError(f"{self.path}: not a readable ELF file ({e})") from e
        except Exception as e:  # pyelftools' own ELFError and friends
            if isinstance(e, ElfError):
                raise
            raise ElfError(f"{self.path}: not a readable ELF file ({e})") from e
        self.functions = sorted(funcs, key=lambda f: f.lo)
        self._starts = [f.lo for f in self.functions]
        self._objects = objects

    def read(self, addr: int, n: int) -> bytes:
        for base, data in self._segments:
            if base <= addr and addr + n <= base + len(data):
                return data[addr - base : addr - base + n]
        raise ElfError(f"{self.path}: no code or data at 0x{addr:08x}")

    def function_at(self, pc: int) -> Function | None:
        i = bisect.bisect_right(self._starts, pc) - 1
        if i >= 0 and pc < self.functions[i].hi:
            return self.functions[i]
        return None

    def function(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise ElfError(f"{self.path}: no function {name!r}")

    def object_range(self, name: str) -> tuple[int, int]:
        """[start, end) of the data object ``name``."""
        if name not in self._objects:
            raise ElfError(f"{self.path}: no data object {name!r}")
        addr, size = self._objects[name]
        return addr, addr + size

    def handlers(self, table: str = "vector_table") -> list[Function]:
        """The exception handlers the vector table names (entries 2 on: not the initial stack
        pointer, not the reset handler, which runs in thread mode), each once."""
        if table not in self._objects:
            raise ElfError(f"{self.path}: no vector table symbol {table!r}")
        addr, size = self._objects[table]
        words = self.read(addr, size)
        out: dict[int, Function] = {}
        for i in range(2, size // 4):
            target = int.from_bytes(words[4 * i : 4 * i + 4], "little") & ~1
            if target == 0 or target in out:
                continue
            fn = self.function_at(target)
            if fn is None or fn.lo != target:
                raise ElfError(f"{self.path}: vector {i} points at 0x{target:08x}, no function")
            out[target] = fn
        return list(out.values())

    def flash_range(self) -> tuple[int, int]:
        """Code and read-only data (.text, .rodata and what the link put with them): what a
        flash-based board holds in flash."""
        spans = [v for k, v in self._sections.items() if k.startswith((".text", ".rodata"))]
        spans += [v for k, v in self._sections.items() if k in (".vectors", ".isr_vector")]
        if not spans:
            raise ElfError(f"{self.path}: no .text section")
        return min(lo for lo, _ in spans), max(hi for _, hi in spans)
