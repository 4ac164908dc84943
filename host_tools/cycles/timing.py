"""Cortex-M4 cycles of a recorded instruction stream: each executed instruction classified with
capstone and timed by the table m4_timing.csv (the TRM's figures, as data), plus the rules that
depend on the instruction before it (pipeline refill of a taken branch, load pipelining, IT
folding) and the memory setting's stalls."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from .elfimage import ElfImage
from .memory import MemorySetting
from .trace import Segment

MIX = ("load", "store", "mac", "simd", "branch", "other")
_CONDITIONS = ("eq", "ne", "hs", "cs", "lo", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge",
               "lt", "gt", "le", "al")  # fmt: skip


@dataclass(frozen=True)
class Row:
    cls: str
    cycles: float
    per_reg: bool
    mix: str
    trm: str


class Table:
    """m4_timing.csv: classes by mnemonic, and the rules' parameters (rows named @...)."""

    def __init__(self, text: str | None = None):
        if text is None:
            text = (resources.files("host_tools.cycles") / "m4_timing.csv").read_text()
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        self.rows: dict[str, Row] = {}
        self.by_mnemonic: dict[str, Row] = {}
        self.rules: dict[str, float] = {}
        for rec in csv.DictReader(lines):
            row = Row(
                rec["class"],
                float(rec["cycles"]),
                rec["per_reg"] == "1",
                rec["mix"],
                rec["trm"],
            )
            if row.cls.startswith("@"):
                self.rules[row.cls[1:]] = row.cycles
                continue
            self.rows[row.cls] = row
            for m in rec["mnemonics"].split():
                if m in self.by_mnemonic:
                    raise ValueError(f"m4_timing.csv: mnemonic {m!r} in two rows")
                self.by_mnemonic[m] = row

    def row_for(self, mnemonic: str, cond: bool) -> Row | None:
        m = mnemonic.lower().split(".")[0]
        candidates = [m]
        if cond and len(m) > 2 and m[-2:] in _CONDITIONS:
            candidates.append(m[:-2])
        for c in list(candidates):
            if c.endswith("s"):
                candidates.append(c[:-1])
        for c in candidates:
            if c in self.by_mnemonic:
                return self.by_mnemonic[c]
        return None


@dataclass(frozen=True)
class Insn:
    pc: int
    size: int
    text: str  # "mnemonic operands", for reports
    row: Row | None  # None: not in the table (timed as 1 cycle and reported)
    n_regs: int  # registers a load/store multiple transfers
    writes_pc: bool
    single_load: bool
    address_regs: frozenset
    written_regs: frozenset


class Decoder:
    """Instructions of an ELF, decoded once each."""

    def __init__(self, elf: ElfImage, table: Table):
        import capstone

        self.elf, self.table = elf, table
        self._cs = capstone.Cs(
            capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS
        )
        self._cs.detail = True
        self._cache: dict[int, Insn] = {}

    def __getitem__(self, pc: int) -> Insn:
        insn = self._cache.get(pc)
        if insn is None:
            insn = self._cache[pc] = self._decode(pc)
        return insn

    def _decode(self, pc: int) -> Insn:
        import capstone
        from capstone import arm

        try:
            code = self.elf.read(pc, 4)
        except Exception:
            code = self.elf.read(pc, 2)
        ins = next(self._cs.disasm(code, pc, 1), None)
        if ins is None:
            raise ValueError(f"0x{pc:08x}: capstone cannot decode {code.hex()}")
        cond = ins.cc not in (arm.ARM_CC_AL, arm.ARM_CC_INVALID)
        row = self.table.row_for(ins.mnemonic, cond)
        _, written = ins.regs_access()
        names = {ins.reg_name(r) for r in written}
        regs = [op for op in ins.operands if op.type == arm.ARM_OP_REG]
        mems = [op for op in ins.operands if op.type == arm.ARM_OP_MEM]
        n_regs = 0
        if row is not None and row.per_reg:
            base_is_operand = ins.mnemonic.split(".")[0] not in ("push", "pop", "vpush", "vpop")
            n_regs = len(regs) - (1 if base_is_operand else 0)
        address = set()
        for op in mems:
            for r in (op.mem.base, op.mem.index):
                if r:
                    address.add(ins.reg_name(r))
        return Insn(
            pc=pc,
            size=ins.size,
            text=f"{ins.mnemonic} {ins.op_str}".strip(),
            row=row,
            n_regs=n_regs,
            writes_pc="pc" in names
            or any(ins.group(g) for g in (capstone.CS_GRP_JUMP, capstone.CS_GRP_CALL)),
            single_load=row is not None and row.cls == "load",
            address_regs=frozenset(address),
            written_regs=frozenset(names),
        )


@dataclass
class Cycles:
    """The estimate of a stretch of instructions."""

    insns: int = 0
    core: float = 0.0  # the core's cycles with ideal memory (unaligned accesses included)
    mix: Counter = field(default_factory=Counter)  # instructions per MIX share
    imiss_seq: int = 0
    imiss_nonseq: int = 0
    dmiss: int = 0
    unlisted: Counter = field(default_factory=Counter)  # mnemonics not in the table

    def add(self, other: Cycles) -> None:
        self.insns += other.insns
        self.core += other.core
        self.mix.update(other.mix)
        self.imiss_seq += other.imiss_seq
        self.imiss_nonseq += other.imiss_nonseq
        self.dmiss += other.dmiss
        self.unlisted.update(other.unlisted)

    def total(self, memory: MemorySetting) -> float:
        return self.core + memory.stalls(self.imiss_seq, self.imiss_nonseq, self.dmiss)


class Timer:
    def __init__(self, decoder: Decoder):
        self.d = decoder
        self.rules = decoder.table.rules

    def pair_cycles(self, prev_pc: int, pc: int) -> tuple[float, Insn]:
        """Cycles of the instruction at ``pc`` executed right after the one at ``prev_pc``,
        with the refill that ``prev_pc``'s change of flow (if any) costs charged here."""
        ins = self.d[pc]
        row = ins.row
        c = 1.0 if row is None else row.cycles + (ins.n_regs if row.per_reg else 0)
        if prev_pc:
            prev = self.d[prev_pc]
            if prev.writes_pc and pc != prev.pc + prev.size:
                c += self.rules["refill"]
                if ins.size == 4 and pc % 4 == 2:
                    c += self.rules["refill_unaligned_32"]
            elif (
                ins.single_load
                and prev.single_load
                and not (ins.address_regs & prev.written_regs)
                and pc == prev.pc + prev.size
            ):
                c -= self.rules["load_pipelined"]
            if row is not None and row.cls == "if_then" and prev.size == 2 and not prev.writes_pc:
                c = self.rules["it_folded"]
        return c, ins

    def segment(self, seg: Segment) -> Cycles:
        out = Cycles(
            insns=seg.insns,
            imiss_seq=seg.imiss_seq,
            imiss_nonseq=seg.imiss_nonseq,
            dmiss=seg.dmiss,
            core=float(seg.unaligned_cycles),
        )
        for (prev_pc, pc), n in seg.pairs.items():
            c, ins = self.pair_cycles(prev_pc, pc)
            out.core += c * n
            out.mix[ins.row.mix if ins.row else "other"] += n
            if ins.row is None:
                out.unlisted[ins.text.split()[0]] += n
        return out
