"""The energy estimate of a run: a board power profile (datasheet figures, docs/power.md) applied
to the on-chip counts per epoch. An estimate, not a measurement."""

from __future__ import annotations

from sleepdata.layout import EPOCH_S

#: Board power profiles for the energy estimate; the figures and their source: docs/power.md.
POWER_PROFILES = {
    "nucleo-l476rg": {
        "mcu": "STM32L476RG",
        "datasheet": "STMicroelectronics DS10198 (STM32L476xx), feature summary, typical values",
        "supply_v": 3.0,
        "clock_hz": 80_000_000,
        "run_ua_per_mhz": 100.0,
        "sleep_mode": "Stop 2 with RTC",
        "sleep_ua": 1.4,
    }
}
NIGHT_EPOCHS = 8 * 3600 // EPOCH_S  # an 8-h night, the unit of the energy estimate


def energy_estimate(
    count_per_epoch: float, kind: str, cycles_per_instruction: float | None = None
) -> dict:
    """Energy estimate of the MCU core for the nucleo-l476rg profile (docs/power.md). With
    instruction counts, ``cycles_per_instruction`` (the cycle estimate's nucleo-l476rg figure,
    docs/cycles.md) turns them into cycles; without it, 1 instruction is taken as 1 cycle."""
    p = POWER_PROFILES["nucleo-l476rg"]
    if kind == "instructions" and cycles_per_instruction:
        basis = (
            f"instructions x {cycles_per_instruction:.3f} estimated cycles per instruction (the "
            "cycle estimate of a sample of epochs, nucleo-l476rg memory setting)"
        )
        cycles = count_per_epoch * cycles_per_instruction
    else:
        basis = "cycles at 1 instruction per cycle" if kind == "instructions" else "cycles"
        cycles = count_per_epoch
    active_s = cycles / p["clock_hz"]
    run_ma = p["run_ua_per_mhz"] * p["clock_hz"] / 1e6 / 1e3
    idle_s = max(EPOCH_S - active_s, 0.0)
    per_epoch_j = p["supply_v"] * (run_ma * 1e-3 * active_s + p["sleep_ua"] * 1e-6 * idle_s)
    return {
        "estimate": True,
        "profile": "nucleo-l476rg",
        **p,
        "run_ma": run_ma,
        "active_s_per_epoch": active_s,
        "energy_per_epoch_mj": per_epoch_j * 1e3,
        "night_epochs": NIGHT_EPOCHS,
        "energy_per_night_j": per_epoch_j * NIGHT_EPOCHS,
        "average_current_ua": per_epoch_j / p["supply_v"] / EPOCH_S * 1e6,
        "assumes": (
            "the median on-chip count per epoch (preprocessing + inference) as "
            f"{basis} at {p['clock_hz'] / 1e6:g} MHz in run mode, the rest of each 30-s epoch in "
            f"{p['sleep_mode']}; MCU only (no acquisition front end, UART, regulator or "
            "debugger); datasheet typical figures, not a measurement (docs/power.md)"
        ),
    }
