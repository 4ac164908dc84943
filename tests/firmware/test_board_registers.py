"""The nucleo-l476rg board code against the vendor's register description, before it meets a real
STM32L476RG: every register address, every bit and field constant, the reset state it relies on
and the values it writes, checked against ST's SVD of the STM32L4x6 (shipped by cmsis-svd 0.4, a
dev dependency) and, for the Cortex-M core registers that the SVD does not describe, against
the Armv7-M Architecture Reference Manual (ARM DDI 0403E).

The board layer of the image is board.c, boards/common/*.c and the headers they include, as the
firmware Makefile links them. Every register they name must have a row in REGISTERS, every
constant they write to or compare with a register a row in USES (registers.py reads them out
of the C). The other numbers (MSI ranges, PLL limits, wait states, pins) are the reference
manual's (RM0351) and the datasheet's, cited where they are used."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from .registers import (
    BITPOS,
    Device,
    Field,
    Register,
    included_sources,
    read_board_sources,
    read_svd,
)
from .test_constants import FIRMWARE, board_table, c_defines

BOARD = "nucleo-l476rg"
BOARDS = FIRMWARE / "boards"
SVD_FILE = Path("data") / "STMicro" / "STM32L4x6.svd"
SVD_PIN = "cmsis-svd==0.4"  # the last release with the vendors' SVD files inside


# --- Armv7-M core registers (ARM DDI 0403E; fixed addresses, not in the vendor SVD) ----------


@dataclass(frozen=True)
class Core:
    address: int  # of element 0 for an array
    section: str  # ARM DDI 0403E
    fields: dict[str, tuple[int, int]]  # name -> (bit offset, width)
    bits: int = 32
    per: int = 0  # arrays: interrupts per element ...
    stride: int = 0  # ... and bytes between elements

    def register(self, name: str) -> Register:
        fields = {f: Field(f, off, width) for f, (off, width) in self.fields.items()}
        return Register(name, self.address, self.bits, None, fields)


ARM = "ARM"
CORE = {
    "SYST_CSR": Core(
        0xE000E010,
        "B3.3.3 SysTick Control and Status Register",
        {"ENABLE": (0, 1), "TICKINT": (1, 1), "CLKSOURCE": (2, 1), "COUNTFLAG": (16, 1)},
    ),
    "SYST_RVR": Core(0xE000E014, "B3.3.4 SysTick Reload Value Register", {"RELOAD": (0, 24)}),
    # the counter is 24 bits wide (B3.3.1)
    "SYST_CVR": Core(0xE000E018, "B3.3.5 SysTick Current Value Register", {"CURRENT": (0, 24)}),
    "ICSR": Core(
        0xE000ED04,
        "B3.2.4 Interrupt Control and State Register",
        {"PENDSTCLR": (25, 1), "PENDSTSET": (26, 1), "PENDSVCLR": (27, 1), "PENDSVSET": (28, 1)},
    ),
    "AIRCR": Core(
        0xE000ED0C,
        "B3.2.6 Application Interrupt and Reset Control Register",
        {"VECTCLRACTIVE": (1, 1), "SYSRESETREQ": (2, 1), "PRIGROUP": (8, 3), "VECTKEY": (16, 16)},
    ),
    "SHPR3": Core(
        0xE000ED20,
        "B3.2.12 System Handler Priority Register 3",
        {"PRI_12": (0, 8), "PRI_13": (8, 8), "PRI_14": (16, 8), "PRI_15": (24, 8)},
    ),
    "NVIC_ISER": Core(
        0xE000E100, "B3.4.4 Interrupt Set-Enable Registers", {"SETENA": (0, 32)}, per=32, stride=4
    ),
    "NVIC_ISPR": Core(
        0xE000E200, "B3.4.6 Interrupt Set-Pending Registers", {"SETPEND": (0, 32)}, per=32, stride=4
    ),
    # byte-accessible: one priority byte per interrupt
    "NVIC_IPR": Core(
        0xE000E400, "B3.4.9 Interrupt Priority Registers", {"PRI": (0, 8)}, bits=8, per=1, stride=1
    ),
    "DEMCR": Core(0xE000EDFC, "C1.6.5 Debug Exception and Monitor Control", {"TRCENA": (24, 1)}),
    "DWT_CTRL": Core(
        0xE0001000,
        "C1.8.7 DWT Control register",
        {
            "CYCCNTENA": (0, 1),
            "CPIEVTENA": (17, 1),
            "EXCEVTENA": (18, 1),
            "SLEEPEVTENA": (19, 1),
            "LSUEVTENA": (20, 1),
            "FOLDEVTENA": (21, 1),
            "NOPRFCNT": (24, 1),
            "NOCYCCNT": (25, 1),
        },
    ),
    "DWT_CYCCNT": Core(0xE0001004, "C1.8.8 DWT Cycle Count register", {"CYCCNT": (0, 32)}),
    # the event counters: 8 bits, wrapping (C1.8.9 - C1.8.13)
    "DWT_CPICNT": Core(0xE0001008, "C1.8.9 DWT CPI Count register", {"CPICNT": (0, 8)}),
    "DWT_EXCCNT": Core(0xE000100C, "C1.8.10 DWT Exception Overhead Count", {"EXCCNT": (0, 8)}),
    "DWT_SLEEPCNT": Core(0xE0001010, "C1.8.11 DWT Sleep Count register", {"SLEEPCNT": (0, 8)}),
    "DWT_LSUCNT": Core(0xE0001014, "C1.8.12 DWT LSU Count register", {"LSUCNT": (0, 8)}),
    "DWT_FOLDCNT": Core(0xE0001018, "C1.8.13 DWT Folded-instruction Count", {"FOLDCNT": (0, 8)}),
}

# --- every register the board layer names: (SVD peripheral, register) or (ARM, CORE key) -----
REGISTERS = {
    "RCC_CR": ("RCC", "CR"),
    "RCC_CFGR": ("RCC", "CFGR"),
    "RCC_PLLCFGR": ("RCC", "PLLCFGR"),
    "RCC_AHB2ENR": ("RCC", "AHB2ENR"),
    "RCC_APB1ENR1": ("RCC", "APB1ENR1"),
    "FLASH_ACR": ("Flash", "ACR"),
    "GPIOA_MODER": ("GPIOA", "MODER"),
    "GPIOA_OSPEEDR": ("GPIOA", "OSPEEDR"),
    "GPIOA_AFRL": ("GPIOA", "AFRL"),
    "USART2_CR1": ("USART2", "CR1"),
    "USART2_BRR": ("USART2", "BRR"),
    "USART2_ISR": ("USART2", "ISR"),
    "USART2_ICR": ("USART2", "ICR"),
    "USART2_RDR": ("USART2", "RDR"),
    "USART2_TDR": ("USART2", "TDR"),
    "DEMCR": (ARM, "DEMCR"),
    "DWT_CTRL": (ARM, "DWT_CTRL"),
    "DWT_CYCCNT": (ARM, "DWT_CYCCNT"),
    "DWT_CPICNT": (ARM, "DWT_CPICNT"),
    "DWT_EXCCNT": (ARM, "DWT_EXCCNT"),
    "DWT_SLEEPCNT": (ARM, "DWT_SLEEPCNT"),
    "DWT_LSUCNT": (ARM, "DWT_LSUCNT"),
    "DWT_FOLDCNT": (ARM, "DWT_FOLDCNT"),
    "SCB_ICSR": (ARM, "ICSR"),  # irq.c
    "SCB_SHPR3": (ARM, "SHPR3"),
    "NVIC_ISER": (ARM, "NVIC_ISER"),
    "NVIC_ISPR": (ARM, "NVIC_ISPR"),
    "NVIC_IPR": (ARM, "NVIC_IPR"),
    "SYST_CSR": (ARM, "SYST_CSR"),  # systick.h (linked into every board)
    "SYST_RVR": (ARM, "SYST_RVR"),
    "SYST_CVR": (ARM, "SYST_CVR"),
    "SYST_ICSR": (ARM, "ICSR"),
    "RAW_E000ED0C": (ARM, "AIRCR"),  # reset.c's bare cast
}

# --- every constant written to or compared with a register ------------------------------------
FLAG = "flag"  # a 1-bit field set, tested or cleared
BIT = "bit"  # one bit (interrupt line % 32) of a multi-bit field
FIELD = "field"  # a value in the listed, adjacent fields, starting at the shift
MASK = "mask"  # all ones over exactly the listed fields (clear / extract / keep)
WORD = "word"  # a whole-register value: its set bits all within the listed fields


@dataclass(frozen=True)
class Row:
    register: str
    value: int
    shift: int | str
    role: str
    fields: str  # space-separated, from the lowest bit up
    note: str = ""

    def __str__(self) -> str:
        return f"{self.register}:{self.fields or '-'}={self.value:#x}<<{self.shift}"


USES = [
    Row("FLASH_ACR", 0x7, 0, MASK, "LATENCY", "read-modify-write, then polled"),
    Row("FLASH_ACR", 4, 0, FIELD, "LATENCY", "4 wait states"),
    Row("FLASH_ACR", 1, 8, FLAG, "PRFTEN"),
    Row("FLASH_ACR", 1, 9, FLAG, "ICEN"),
    Row("FLASH_ACR", 1, 10, FLAG, "DCEN"),
    Row("RCC_PLLCFGR", 1, 0, FIELD, "PLLSRC", "1 = MSI"),
    Row("RCC_PLLCFGR", 0, 4, FIELD, "PLLM", "0 = /1"),
    Row("RCC_PLLCFGR", 40, 8, FIELD, "PLLN", "x40"),
    Row("RCC_PLLCFGR", 1, 24, FLAG, "PLLREN"),
    Row("RCC_PLLCFGR", 0, 25, FIELD, "PLLR", "0 = /2"),
    Row("RCC_CR", 1, 24, FLAG, "PLLON"),
    Row("RCC_CR", 1, 25, FLAG, "PLLRDY"),
    Row("RCC_CFGR", 3, 0, FIELD, "SW", "mask and value: 3 = PLL"),
    Row("RCC_CFGR", 3, 2, FIELD, "SWS", "mask and polled value: 3 = PLL"),
    Row("RCC_AHB2ENR", 1, 0, FLAG, "GPIOAEN"),
    Row("RCC_APB1ENR1", 1, 17, FLAG, "USART2EN"),
    Row("GPIOA_MODER", 0xF, 4, MASK, "MODER2 MODER3"),
    Row("GPIOA_MODER", 0xA, 4, FIELD, "MODER2 MODER3", "2 = alternate function"),
    Row("GPIOA_OSPEEDR", 0xF, 4, FIELD, "OSPEEDR2 OSPEEDR3", "3 = very high speed"),
    Row("GPIOA_AFRL", 0xFF, 8, MASK, "AFRL2 AFRL3"),
    Row("GPIOA_AFRL", 0x77, 8, FIELD, "AFRL2 AFRL3", "AF7"),
    Row("USART2_CR1", 0, 0, WORD, "", "disabled while BRR is written"),
    Row("USART2_CR1", 1, 0, FLAG, "UE"),
    Row("USART2_CR1", 1, 2, FLAG, "RE"),
    Row("USART2_CR1", 1, 3, FLAG, "TE"),
    Row("USART2_CR1", 1, 5, FLAG, "RXNEIE", "CR1_RXNEIE"),
    Row("USART2_BRR", 87, 0, FIELD, "DIV_Fraction DIV_Mantissa", "(CORE_CLOCK_HZ+BAUD/2)/BAUD"),
    Row("USART2_ISR", 1, 3, FLAG, "ORE", "ISR_ORE"),
    Row("USART2_ISR", 1, 5, FLAG, "RXNE", "ISR_RXNE"),
    Row("USART2_ISR", 1, 7, FLAG, "TXE", "ISR_TXE"),
    Row("USART2_ICR", 1, 3, FLAG, "ORECF", "ISR_ORE written to ICR"),
    Row("DEMCR", 1, 24, FLAG, "TRCENA"),
    Row("DWT_CTRL", 1, 0, FLAG, "CYCCNTENA"),
    Row("DWT_CTRL", 0x1F, 17, FIELD, "CPIEVTENA EXCEVTENA SLEEPEVTENA LSUEVTENA FOLDEVTENA"),
    Row("DWT_CTRL", 1, 24, FLAG, "NOPRFCNT", "DWT_NOPRFCNT: no event counters"),
    Row("DWT_CYCCNT", 0, 0, WORD, ""),
    Row("SCB_ICSR", 1, 28, FLAG, "PENDSVSET", "ICSR_PENDSVSET"),
    Row("SCB_SHPR3", 0xFFFF, 0, MASK, "PRI_12 PRI_13", "kept"),
    Row("SCB_SHPR3", 0xFF, 16, FIELD, "PRI_14", "PendSV: lowest"),
    Row("SCB_SHPR3", 0x80, 24, FIELD, "PRI_15", "SysTick"),
    Row("NVIC_ISER", 1, BITPOS, BIT, "SETENA"),
    Row("NVIC_ISPR", 1, BITPOS, BIT, "SETPEND"),
    Row("NVIC_IPR", 0x80, 0, FIELD, "PRI", "the UART's line"),
    Row("SYST_CSR", 0, 0, WORD, ""),
    Row("SYST_CSR", 4, 0, FIELD, "ENABLE TICKINT CLKSOURCE", "processor clock, stopped"),
    Row("SYST_CSR", 7, 0, FIELD, "ENABLE TICKINT CLKSOURCE", "processor clock, running"),
    Row("SYST_RVR", 0xFFFFFF, 0, FIELD, "RELOAD"),
    Row("SYST_RVR", 127, 0, FIELD, "RELOAD", "SAMPLER_RELOAD: the event sampler, 128 cycles"),
    Row("SYST_RVR", 191, 0, FIELD, "RELOAD", "SAMPLER_SLOW_RELOAD: its calibration, 192"),
    Row("SYST_CVR", 0, 0, WORD, ""),
    Row("SYST_CVR", 0xFFFFFF, 0, MASK, "CURRENT"),
    Row("SYST_ICSR", 1, 25, FLAG, "PENDSTCLR", "SYST_ICSR_PENDSTCLR"),
    Row("SYST_ICSR", 1, 26, FLAG, "PENDSTSET", "SYST_ICSR_PENDSTSET"),
    Row("RAW_E000ED0C", 0x05FA0004, 0, WORD, "SYSRESETREQ VECTKEY", "board_reset()"),
]
ROWS = {(r.register, r.value, r.shift): r for r in USES}

# --- reset state the code relies on (it never writes these): (peripheral, register, field) ----
RESETS = [
    ("RCC", "CR", "MSION", 1, "the PLL's source, MSI, is on: nothing turns it on"),
    ("RCC", "CR", "MSIRDY", 1, "... and ready"),
    ("RCC", "CR", "MSIRGSEL", 0, "the MSI range is RCC_CSR.MSISRANGE's"),
    ("RCC", "CSR", "MSISRANGE", 6, "4 MHz: 'MSI 4 MHz (reset default)'"),
    ("RCC", "CR", "MSIRANGE", 6, "4 MHz"),
    ("RCC", "CR", "PLLON", 0, "RCC_PLLCFGR is written while the PLL is off"),
    ("RCC", "CFGR", "HPRE", 0, "HCLK = SYSCLK"),
    ("RCC", "CFGR", "PPRE1", 0, "PCLK1 = HCLK: 'USART2 (clocked from PCLK1 = 80 MHz)'"),
    ("RCC", "CCIPR", "USART2SEL", 0, "USART2's kernel clock is PCLK1"),
    ("PWR", "CR1", "VOS", 1, "voltage range 1, needed above 26 MHz"),
    ("GPIOA", "OTYPER", "OT2", 0, "TX (PA2) push-pull"),
    ("USART2", "CR2", "STOP", 0, "1 stop bit"),
    ("USART2", "CR3", "CTSE", 0, "no hardware flow control"),
    ("USART2", "CR3", "RTSE", 0, "no hardware flow control"),
]

# --- RM0351 (STM32L4x6 reference manual) and DS10198 (STM32L476xx datasheet) numbers ---------
# RCC_CR.MSIRANGE and RCC_CSR.MSISRANGE, kHz
MSI_RANGE_KHZ = [100, 200, 400, 800, 1000, 2000, 4000, 8000, 16000, 24000, 32000, 48000]
PLLSRC = {0: None, 1: "MSI", 2: "HSI16", 3: "HSE"}  # RCC_PLLCFGR.PLLSRC
SW_PLL = 3  # RCC_CFGR.SW / SWS: 0 MSI, 1 HSI16, 2 HSE, 3 PLL
PLL_VCO_IN_HZ = (4_000_000, 16_000_000)  # RCC_PLLCFGR.PLLM: VCO input range
PLL_N = (8, 86)  # RCC_PLLCFGR.PLLN
PLL_VCO_OUT_HZ = (64_000_000, 344_000_000)  # RCC_PLLCFGR.PLLN: VCO output range
SYSCLK_MAX_HZ = {1: 80_000_000, 2: 26_000_000}  # PWR_CR1.VOS: range 1, range 2
# "Number of wait states according to CPU clock (HCLK) frequency", range 1: HCLK <= 16, 32, 48,
# 64, 80 MHz takes 0, 1, 2, 3, 4 wait states
RANGE1_WS_MAX_HZ = [16_000_000, 32_000_000, 48_000_000, 64_000_000, 80_000_000]
MODER_ALTERNATE, OSPEEDR_VERY_HIGH = 2, 3
USART2_PINS_AF = {2: 7, 3: 7}  # DS10198 alternate functions: PA2 AF7 USART2_TX, PA3 AF7 RX
BRR_MIN = 16  # USART baud-rate generation: BRR >= 16 (0x10)
NVIC_PRIO_BITS = 4  # STM32L4: 16 priority levels, the upper 4 bits of each priority byte


# --- fixtures and helpers ---------------------------------------------------------------------


def svd_path() -> Path:
    spec = importlib.util.find_spec("cmsis_svd")
    if spec is None or spec.origin is None:
        pytest.fail(
            f"the Python package cmsis-svd is not installed: {SVD_PIN} ships ST's {SVD_FILE.name}, "
            "which this test checks the board code against. It is a dev dependency "
            "(requirements/lock.txt): run 'make setup'.",
            pytrace=False,
        )
    path = Path(spec.origin).parent / SVD_FILE
    if not path.is_file():
        version = importlib.metadata.version("cmsis-svd")
        pytest.fail(
            f"{path} is missing: cmsis-svd {version} does not ship the vendors' SVD files "
            f"(0.5 and later moved them out); requirements/lock.txt pins {SVD_PIN}: run "
            "'make setup'.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def device() -> Device:
    return read_svd(svd_path())


def board_files() -> list[Path]:
    """The board layer of the image: board.c, boards/common/*.c (as the Makefile links them)
    and the headers they include."""
    return included_sources([BOARDS / BOARD / "board.c", *sorted((BOARDS / "common").glob("*.c"))])


@pytest.fixture(scope="module")
def sources():
    return read_board_sources(board_files())


@pytest.fixture(scope="module")
def facts():
    return board_table()[BOARD]


@pytest.fixture(scope="module")
def irq() -> int:
    return c_defines(BOARDS / BOARD / "board.c")["USART2_IRQ"]


def described(device: Device, macro: str) -> Register:
    where, name = REGISTERS[macro]
    return CORE[name].register(name) if where == ARM else device.register(where, name)


def fields_of(reg: Register, row: Row) -> list[Field]:
    missing = [f for f in row.fields.split() if f not in reg.fields]
    assert not missing, f"{row}: {reg.name} has no field {missing} (it has {sorted(reg.fields)})"
    return [reg.fields[f] for f in row.fields.split()]


def written(device: Device, sources, irq: int) -> dict[tuple[str, str], set[int]]:
    """(register macro, field) -> the values the code writes or compares it with."""
    values = defaultdict(set)
    for use in sources.uses:
        row = ROWS.get((use.register, use.value, use.shift))
        if row is None or row.role == MASK:
            continue  # an unmapped use fails test_every_register_and_constant_has_a_row
        shift = irq % 32 if row.shift == BITPOS else row.shift
        for f in fields_of(described(device, row.register), row):
            values[row.register, f.name].add(f.value_in(row.value << shift))
    return values


def one(values, register: str, field: str) -> int:
    found = values.get((register, field), set())
    assert len(found) == 1, f"{register}.{field}: the code gives it {sorted(found) or 'no value'}"
    return next(iter(found))


def first(sources, pattern: str) -> int:
    m = re.search(pattern, sources.code)
    assert m, f"{pattern!r} not in the board code"
    return m.start()


# --- the tests --------------------------------------------------------------------------------


def test_svd_describes_the_stm32l4x6(device):
    assert device.name == "STM32L4x6"
    assert device.bases["RCC"] == 0x40021000  # RM0351 memory map, a sanity check of the reader


def test_every_register_and_constant_has_a_row(sources):
    assert not sources.problems
    assert set(sources.registers) == set(REGISTERS), "REGISTERS is not the code's register set"
    unmapped = sorted(str(u) for u in sources.uses if (u.register, u.value, u.shift) not in ROWS)
    assert not unmapped, f"constants without a row in USES: {unmapped}"
    assert len(ROWS) == len(USES), "a constant with two rows in USES"
    in_code = {(u.register, u.value, u.shift) for u in sources.uses}
    stale = sorted(str(r) for r in USES if (r.register, r.value, r.shift) not in in_code)
    assert not stale, f"rows of USES the code no longer has: {stale}"
    unchecked = sorted(name for name, regs in sources.bits_used.items() if not regs)
    assert not unchecked, f"named bits never used with a register (not checked): {unchecked}"


@pytest.mark.parametrize("macro", sorted(REGISTERS))
def test_register_address(macro, device, sources, irq):
    code = sources.registers[macro]
    where, name = REGISTERS[macro]
    reg = described(device, macro)
    if code.index is None:
        if where == ARM:
            what = CORE[name].section
        else:
            what = f"{where} base {device.bases[where]:#x} + {reg.address - device.bases[where]:#x}"
        assert code.address == reg.address, f"{macro} {code.address:#x}, {name} at {what}"
        assert code.bits == reg.size, (
            f"{macro}: {code.bits}-bit access of a {reg.size}-bit register"
        )
        return
    core = CORE[name]
    assert code.bits == core.bits
    for n in (0, core.per - 1, core.per, irq):
        expected = core.address + n // core.per * core.stride
        assert code.address_of(n) == expected, f"{macro}({n}): {core.section} has {expected:#x}"
    # the vendor SVD lists the NVIC too: the UART line's register is one of its NVIC's
    assert [p for p, _ in device.at(code.address_of(irq))] == ["NVIC"]


@pytest.mark.parametrize("row", USES, ids=str)
def test_constant_fits_its_fields(row, device, irq):
    reg = described(device, row.register)
    fields = fields_of(reg, row)
    value = row.value
    if row.role == WORD:
        assert row.shift == 0 and value < 1 << reg.size
        allowed = sum(f.mask for f in fields)
        assert value & ~allowed == 0, f"{row}: bits {value & ~allowed:#x} outside {row.fields}"
        return
    shift = irq % 32 if row.shift == BITPOS else row.shift
    if row.role == BIT:
        assert value == 1 and len(fields) == 1 and fields[0].mask & 1 << shift, row
        return
    assert fields[0].offset == shift, f"{row}: {fields[0].name} is at bit {fields[0].offset}"
    for low, high in itertools.pairwise(fields):
        assert high.offset == low.offset + low.width, f"{row}: {low.name}, {high.name} not adjacent"
    width = sum(f.width for f in fields)
    if row.role == FLAG:
        assert (value, width, len(fields)) == (1, 1, 1), f"{row}: {fields[0]} is not a flag"
    elif row.role == MASK:
        assert value == (1 << width) - 1, f"{row}: not the mask of {row.fields} ({width} bits)"
    else:
        assert value < 1 << width, f"{row}: {value:#x} does not fit {width} bits"


@pytest.mark.parametrize(
    "peripheral, register, field, value, why", RESETS, ids=[".".join(r[:3]) for r in RESETS]
)
def test_reset_state_the_code_relies_on(peripheral, register, field, value, why, device):
    assert device.register(peripheral, register).reset_field(field) == value, why


def test_clock_tree_gives_the_core_clock(device, sources, facts, irq):
    v = written(device, sources, irq)
    cr, csr = device.register("RCC", "CR"), device.register("RCC", "CSR")
    if cr.reset_field("MSIRGSEL") == 0:  # after reset the MSI range is RCC_CSR's
        msi_hz = MSI_RANGE_KHZ[csr.reset_field("MSISRANGE")] * 1000
    else:
        msi_hz = MSI_RANGE_KHZ[cr.reset_field("MSIRANGE")] * 1000
    assert PLLSRC[one(v, "RCC_PLLCFGR", "PLLSRC")] == "MSI" and msi_hz == 4_000_000
    m = one(v, "RCC_PLLCFGR", "PLLM") + 1
    n = one(v, "RCC_PLLCFGR", "PLLN")
    r = 2 * (one(v, "RCC_PLLCFGR", "PLLR") + 1)
    assert PLL_VCO_IN_HZ[0] <= msi_hz // m <= PLL_VCO_IN_HZ[1] and msi_hz % m == 0
    assert PLL_N[0] <= n <= PLL_N[1]
    vco = msi_hz // m * n
    assert PLL_VCO_OUT_HZ[0] <= vco <= PLL_VCO_OUT_HZ[1]
    core_hz = int(facts["core_clock_hz"])
    assert core_hz == c_defines(BOARDS / BOARD / "board.c")["CORE_CLOCK_HZ"]
    assert vco % r == 0 and vco // r == core_hz, f"PLL: {msi_hz} / {m} x {n} / {r}"
    assert one(v, "RCC_PLLCFGR", "PLLREN") == 1
    assert one(v, "RCC_CR", "PLLON") == one(v, "RCC_CR", "PLLRDY") == 1
    assert one(v, "RCC_CFGR", "SW") == one(v, "RCC_CFGR", "SWS") == SW_PLL
    assert core_hz <= SYSCLK_MAX_HZ[device.register("PWR", "CR1").reset_field("VOS")]


def test_flash_wait_states_set_before_the_switch(device, sources, facts, irq):
    v = written(device, sources, irq)
    assert device.register("RCC", "CFGR").reset_field("HPRE") == 0  # HCLK = SYSCLK
    hclk = int(facts["core_clock_hz"])
    assert device.register("PWR", "CR1").reset_field("VOS") == 1  # range 1
    needed = next(ws for ws, top in enumerate(RANGE1_WS_MAX_HZ) if hclk <= top)
    latency = one(v, "FLASH_ACR", "LATENCY")
    assert latency == needed == 4, f"{latency} wait states, {hclk} Hz in range 1 needs {needed}"
    # raise the wait states (and see them read back) before SYSCLK goes up
    assert first(sources, r"\bFLASH_ACR\s*=") < first(sources, r"\bRCC_CFGR\s*=")


def test_usart2_baud_rate_and_frame(device, sources, facts, irq):
    v = written(device, sources, irq)
    brr = described(device, "USART2_BRR")
    word = sum(one(v, "USART2_BRR", f) << brr.fields[f].offset for f in brr.fields)
    rcc = {r: device.register("RCC", r) for r in ("CFGR", "CCIPR")}
    # USART2's clock: PCLK1 (USART2SEL 0) = HCLK / 1 (PPRE1 0xx) = SYSCLK / 1 (HPRE 0xxx)
    assert rcc["CCIPR"].reset_field("USART2SEL") == 0
    assert rcc["CFGR"].reset_field("PPRE1") < 4 and rcc["CFGR"].reset_field("HPRE") < 8
    pclk1 = int(facts["core_clock_hz"])
    baud = int(facts["uart_baud"])
    assert word >= BRR_MIN and word == round(pclk1 / baud)
    assert abs(pclk1 / word / baud - 1) < 0.005, f"{pclk1 / word:.0f} baud for {baud}"
    cr1 = described(device, "USART2_CR1")
    for f in ("M0", "M1", "PCE", "OVER8"):  # 8 data bits, no parity, 16x oversampling
        assert cr1.reset_field(f) == 0 and v.get(("USART2_CR1", f), {0}) == {0}, f
    assert device.bases["USART2"] == int(facts["uart_base"], 16)
    assert first(sources, r"\bUSART2_CR1\s*=\s*0\b") < first(sources, r"\bUSART2_BRR\s*=")


def test_usart2_pins_and_clocks(device, sources, irq):
    v = written(device, sources, irq)
    for pin, af in USART2_PINS_AF.items():
        assert one(v, "GPIOA_MODER", f"MODER{pin}") == MODER_ALTERNATE
        assert one(v, "GPIOA_AFRL", f"AFRL{pin}") == af
        assert one(v, "GPIOA_OSPEEDR", f"OSPEEDR{pin}") == OSPEEDR_VERY_HIGH
    assert one(v, "RCC_AHB2ENR", "GPIOAEN") == one(v, "RCC_APB1ENR1", "USART2EN") == 1
    assert first(sources, r"\bRCC_AHB2ENR\b") < first(sources, r"\bGPIOA_")
    assert first(sources, r"\bRCC_APB1ENR1\b") < first(sources, r"\bUSART2_")


def test_usart2_interrupt_line_and_priorities(device, sources, facts, irq):
    assert irq == device.interrupts["USART2"] == int(facts["uart_irq"])
    assert irq < c_defines(BOARDS / "common" / "startup.c")["EXTERNAL_IRQS"], "no vector"
    v = written(device, sources, irq)
    level = 0xFF & ~((1 << (8 - NVIC_PRIO_BITS)) - 1)  # the implemented priority bits
    uart, pendsv = one(v, "NVIC_IPR", "PRI") & level, one(v, "SCB_SHPR3", "PRI_14") & level
    assert uart < pendsv == level, "the UART interrupt must preempt the service handler"
    assert one(v, "SCB_SHPR3", "PRI_15") & level < pendsv
    assert one(v, "SCB_ICSR", "PENDSVSET") == 1


def test_core_reset_and_cycle_counter(device, sources, irq):
    v = written(device, sources, irq)
    assert one(v, "RAW_E000ED0C", "VECTKEY") == 0x05FA
    assert one(v, "RAW_E000ED0C", "SYSRESETREQ") == 1
    assert one(v, "DEMCR", "TRCENA") == one(v, "DWT_CTRL", "CYCCNTENA") == 1
    # TRCENA powers the DWT: set it before the DWT is written
    assert first(sources, r"\bDEMCR\b") < first(sources, r"\bDWT_(CTRL|CYCCNT)\b")
    assert one(v, "SYST_CSR", "CLKSOURCE") == 1


EVENT_COUNTERS = ("CPICNT", "EXCCNT", "SLEEPCNT", "LSUCNT", "FOLDCNT")


def test_dwt_event_counters_and_their_sampler(device, sources, irq):
    """The five event counters are enabled together, read at their C1.8 addresses as 8-bit
    values, and sampled by SysTick at the processor clock, less than 256 cycles apart."""
    v = written(device, sources, irq)
    for name in ("CPIEVTENA", "EXCEVTENA", "SLEEPEVTENA", "LSUEVTENA", "FOLDEVTENA"):
        assert one(v, "DWT_CTRL", name) == 1, name
    assert one(v, "DWT_CTRL", "NOPRFCNT") == 1  # tested: a DWT without them says so
    for name in EVENT_COUNTERS:
        assert re.search(rf"\(uint8_t\)DWT_{name}\b", sources.code), f"DWT_{name} read as 8 bits"
    reloads = {r.value for r in USES if r.register == "SYST_RVR" and r.value < 0xFFFFFF}
    ints = c_defines(BOARDS / BOARD / "board.c")
    assert reloads == {ints["SAMPLER_RELOAD"], ints["SAMPLER_SLOW_RELOAD"]}
    safe = c_defines(BOARDS / "common" / "dwt_events.h")["DWT_EVENTS_SAFE_CYCLES"]
    assert all(r + 1 < safe < 256 for r in reloads), "a counter could wrap between two ticks"
    # the counters count (their enable bits) before the sampler's first read
    assert first(sources, r"\bDWT_CTRL\s*\|=\s*0x1Fu") < first(sources, r"\bsampler_calibrate\(\)")
