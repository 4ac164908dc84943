"""Register maps for tests/firmware/test_board_registers.py: a reader for the vendor's CMSIS-SVD
device description, and the register accesses of a board's C read out of its sources.

The C side is deliberately small and strict. It knows the forms the boards use to name a
register (`#define X REG(0x...u)`, `#define X (*(volatile uint32_t *)0x...u)`, an indexed
`#define X(n) (*(volatile uint8_t *)(0x...u + ...))`, a bare cast in a statement) and the forms
of the constants written to or compared with one (`(v << s)`, bare literals, `(REG >> s) & m`,
named bits `#define NAME (1u << s)`, integer #defines). Every statement that names a register
yields its (register, value, shift) uses; a form it does not know shows up as a use that no
table row explains, or as a problem, so the test fails rather than overlooking a constant."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

# --- CMSIS-SVD ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.offset

    def value_in(self, word: int) -> int:
        return (word >> self.offset) & ((1 << self.width) - 1)


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int  # bits
    reset: int | None
    fields: dict[str, Field]

    def reset_field(self, name: str) -> int:
        assert self.reset is not None, f"{self.name}: no reset value"
        return self.fields[name].value_in(self.reset)


@dataclass
class Device:
    name: str
    peripherals: dict[str, dict[str, Register]]
    bases: dict[str, int]
    interrupts: dict[str, int] = field(default_factory=dict)

    def register(self, peripheral: str, name: str) -> Register:
        return self.peripherals[peripheral][name]

    def at(self, address: int) -> list[tuple[str, Register]]:
        """Every (peripheral, register) whose 32-bit word holds `address`."""
        return [
            (p, r)
            for p, regs in self.peripherals.items()
            for r in regs.values()
            if r.address <= address < r.address + r.size // 8
        ]


def _int(text: str | None) -> int | None:
    return None if text is None else int(text.strip(), 0)


def read_svd(path: Path) -> Device:
    """The peripherals (derivedFrom resolved), registers, fields and interrupts of an SVD file."""
    root = ET.parse(path).getroot()
    size = _int(root.findtext("size")) or 32
    reset = _int(root.findtext("resetValue"))
    nodes = {p.findtext("name"): p for p in root.iter("peripheral")}
    device = Device(root.findtext("name") or path.stem, {}, {})
    for name, node in nodes.items():
        base = _int(node.findtext("baseAddress"))
        source = nodes[node.get("derivedFrom")] if node.get("derivedFrom") else node
        p_size = _int(source.findtext("size")) or size
        p_reset = _int(source.findtext("resetValue"))
        p_reset = reset if p_reset is None else p_reset
        regs = {}
        for r in source.iter("register"):
            r_reset = _int(r.findtext("resetValue"))
            regs[r.findtext("name")] = Register(
                name=r.findtext("name"),
                address=base + _int(r.findtext("addressOffset")),
                size=_int(r.findtext("size")) or p_size,
                reset=p_reset if r_reset is None else r_reset,
                fields={
                    f.findtext("name"): Field(
                        f.findtext("name"),
                        _int(f.findtext("bitOffset")),
                        _int(f.findtext("bitWidth")),
                    )
                    for f in r.iter("field")
                },
            )
        device.peripherals[name] = regs
        device.bases[name] = base
    for irq in root.iter("interrupt"):
        device.interrupts[irq.findtext("name")] = _int(irq.findtext("value"))
    return device


# --- C sources -------------------------------------------------------------------------------

NUM = r"(?:0x[0-9A-Fa-f]+|\d+)"
#: the shift of a computed bit position, `1u << ((uint32_t)irqn & 31u)`: bit n % 32 of word n / 32
BITPOS = "n%32"


@dataclass(frozen=True)
class RegisterMacro:
    name: str
    address: int  # of index 0 for an indexed macro
    bits: int  # access width
    index: str | None = None  # C expression of the address in `param`, for NVIC_ISER(n) etc.
    param: str | None = None

    def address_of(self, n: int) -> int:
        """The address an indexed macro gives for index n (the C expression, evaluated)."""
        if self.index is None:
            return self.address
        expr = re.sub(r"\(\s*uint\d+_t\s*\)", "", self.index)
        expr = re.sub(rf"\b({NUM})[uU]\b", r"\1", expr)
        expr = re.sub(rf"\b{self.param}\b", str(n), expr)
        assert re.fullmatch(r"[0-9a-fA-Fx\s()+*>]+", expr), expr
        return eval(expr, {"__builtins__": {}})  # a checked arithmetic expression


@dataclass(frozen=True)
class Use:
    register: str
    value: int
    shift: int | str  # a bit number, or BITPOS

    def __str__(self) -> str:
        return f"{self.register}: {self.value:#x} << {self.shift}"


@dataclass
class BoardSources:
    files: list[Path]
    registers: dict[str, RegisterMacro]
    bits: dict[str, int]  # named single bits: NAME -> bit number
    ints: dict[str, int]  # integer #defines
    uses: set[Use]
    bits_used: dict[str, set[str]]  # named bit -> registers it appeared with
    problems: list[str]
    code: str  # every file's code, comments and preprocessor lines removed


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", " ", text, flags=re.S))


def included_sources(sources: list[Path]) -> list[Path]:
    """The sources and the headers they include ("..."), transitively, in order found."""
    seen: list[Path] = []
    todo = list(sources)
    while todo:
        path = todo.pop(0).resolve()
        if path in seen:
            continue
        seen.append(path)
        for name in re.findall(r'^#include\s+"([^"]+)"', path.read_text(), flags=re.M):
            todo.append(path.parent / name)
    return seen


_ACCESSOR = re.compile(r"#define\s+(\w+)\((\w+)\)\s+\(\*\(volatile\s+uint(\d+)_t\s*\*\)\s*\(\2\)\)")
_CAST = re.compile(rf"\(\*\(volatile\s+uint(\d+)_t\s*\*\)\s*({NUM})[uU]?\)")
_INDEXED = re.compile(
    rf"#define\s+(\w+)\((\w+)\)\s+\(\*\(volatile\s+uint(\d+)_t\s*\*\)\s*(\(({NUM})[uU]?\s*\+.*\))\)$"
)
_BIT = re.compile(r"#define\s+(\w+)\s+\(\s*1[uU]?\s*<<\s*(\d+)[uU]?\s*\)$")
_INT = re.compile(rf"#define\s+(\w+)\s+({NUM})[uU]?$")


def read_board_sources(files: list[Path]) -> BoardSources:
    """Register macros, named bits and every (register, value, shift) use in `files`."""
    registers: dict[str, RegisterMacro] = {}
    bits: dict[str, int] = {}
    ints: dict[str, int] = {}
    problems: list[str] = []
    accessors: dict[str, int] = {}
    code_parts = []
    for path in files:
        code = []
        for line in strip_comments(path.read_text()).splitlines():
            line = line.strip()
            if not line.startswith("#"):
                code.append(line)
                continue
            if not line.startswith("#define"):
                continue
            if m := _ACCESSOR.fullmatch(line):
                accessors[m.group(1)] = int(m.group(3))
            elif m := re.fullmatch(rf"#define\s+(\w+)\s+(\w+)\(({NUM})[uU]?\)", line):
                if m.group(2) in accessors:
                    registers[m.group(1)] = RegisterMacro(
                        m.group(1), int(m.group(3), 0), accessors[m.group(2)]
                    )
                else:
                    problems.append(f"{path.name}: unknown accessor in {line!r}")
            elif m := re.fullmatch(rf"#define\s+(\w+)\s+{_CAST.pattern}", line):
                registers[m.group(1)] = RegisterMacro(
                    m.group(1), int(m.group(3), 0), int(m.group(2))
                )
            elif m := _INDEXED.fullmatch(line):
                name, param, width, expr, base = m.groups()
                registers[name] = RegisterMacro(name, int(base, 0), int(width), expr, param)
            elif m := _BIT.fullmatch(line):
                bits[m.group(1)] = int(m.group(2))
            elif m := _INT.fullmatch(line):
                ints[m.group(1)] = int(m.group(2), 0)
            elif "volatile" in line or re.search(r"0x[0-9A-Fa-f]{8}", line):
                problems.append(f"{path.name}: register-like #define not understood: {line!r}")
        code_parts.append("\n".join(code))
    code = "\n".join(code_parts)

    # bare casts in statements become registers named by their address
    def raw(m: re.Match) -> str:
        name = f"RAW_{int(m.group(2), 0):08X}"
        registers[name] = RegisterMacro(name, int(m.group(2), 0), int(m.group(1)))
        return name

    code = _CAST.sub(raw, code)
    uses: set[Use] = set()
    bits_used: dict[str, set[str]] = {name: set() for name in bits}
    for chunk in re.split(r"[;{}]", code):
        named = [r for r in registers if re.search(rf"\b{r}\b", chunk)]
        for bit in bits:
            if re.search(rf"\b{bit}\b", chunk):
                bits_used[bit].update(named)
        if not named:
            continue
        if len(named) > 1:
            problems.append(f"one statement, several registers {named}: {chunk.strip()!r}")
            continue
        uses |= _chunk_uses(named[0], chunk, registers[named[0]], bits, ints, problems)
    return BoardSources(files, registers, bits, ints, uses, bits_used, problems, code)


def _chunk_uses(
    reg: str,
    chunk: str,
    macro: RegisterMacro,
    bits: dict[str, int],
    ints: dict[str, int],
    problems: list[str],
) -> set[Use]:
    text = chunk
    if macro.index is not None:  # NVIC_ISER(irqn) -> NVIC_ISER
        text = re.sub(rf"\b{reg}\s*\(\s*\w+\s*\)", reg, text)
    for name, bit in bits.items():
        text = re.sub(rf"\b{name}\b", f"(1u << {bit})", text)
    for name, value in ints.items():
        text = re.sub(rf"\b{name}\b", f"{value}u", text)
    text = re.sub(r"<<\s*\(\s*\(uint32_t\)\s*\w+\s*&\s*31[uU]?\s*\)", f"<< {BITPOS}", text)
    # a plain assignment of arithmetic on literals and integer #defines: its value
    if m := re.fullmatch(rf"\s*{reg}\s*=\s*([^=].*?)\s*", text, flags=re.S):
        rhs = m.group(1)
        if "<<" not in rhs and re.fullmatch(rf"[\s()+\-*/]*(?:{NUM}[uU]?[\s()+\-*/]*)+", rhs):
            expr = re.sub(rf"({NUM})[uU]", r"\1", rhs).replace("/", "//")
            return {Use(reg, eval(expr, {"__builtins__": {}}), 0)}
    uses = set()
    for m in re.finditer(rf"\b({NUM})[uU]?\s*<<\s*({NUM}|{re.escape(BITPOS)})[uU]?", text):
        shift = m.group(2) if m.group(2) == BITPOS else int(m.group(2), 0)
        uses.add(Use(reg, int(m.group(1), 0), shift))
    text = re.sub(rf"\b({NUM})[uU]?\s*<<\s*({NUM}|{re.escape(BITPOS)})[uU]?", " ", text)
    shift = 0
    if m := re.search(rf"\b{reg}\s*>>\s*({NUM})[uU]?", text):
        shift = int(m.group(1), 0)
        text = text[: m.start()] + reg + text[m.end() :]
    if ">>" in text or "<<" in text:
        problems.append(f"shift not understood: {chunk.strip()!r}")
    for m in re.finditer(rf"\b({NUM})[uU]?\b", text):
        uses.add(Use(reg, int(m.group(1), 0), shift))
    return uses
