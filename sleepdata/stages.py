"""Sleep stages: the AASM classes the toolkit predicts and the R&K labels Sleep-EDF is scored in.

Sleep-EDF hypnograms were scored with the Rechtschaffen & Kales (R&K) rules. The toolkit maps
them to the five AASM classes: W, N1, N2, N3 (= R&K stages 3 and 4 merged) and REM.
"Movement time" and "Sleep stage ?" (unscored) are not sleep stages and are dropped.
"""

from __future__ import annotations

# Class indices used by every part of the toolkit (training, converter, firmware, host tools).
W, N1, N2, N3, REM = 0, 1, 2, 3, 4
STAGE_NAMES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")
N_STAGES = len(STAGE_NAMES)

#: Label codes for epochs that carry no AASM stage; every negative label is dropped.
UNSCORED = -1  # "Sleep stage ?"
MOVEMENT = -2  # "Movement time"

#: R&K annotation text in Sleep-EDF hypnograms -> AASM class (negative codes: dropped).
RK_TO_AASM: dict[str, int] = {
    "Sleep stage W": W,
    "Sleep stage 1": N1,
    "Sleep stage 2": N2,
    "Sleep stage 3": N3,
    "Sleep stage 4": N3,
    "Sleep stage R": REM,
    "Movement time": MOVEMENT,
    "Sleep stage ?": UNSCORED,
}

#: AASM class -> the R&K text written into generated hypnograms (N3 is written as stage 3).
AASM_TO_RK: dict[int, str] = {
    W: "Sleep stage W",
    N1: "Sleep stage 1",
    N2: "Sleep stage 2",
    N3: "Sleep stage 3",
    REM: "Sleep stage R",
}

SLEEP_STAGES = frozenset({N1, N2, N3, REM})
