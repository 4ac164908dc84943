"""Sleep-EDF file names: SC4ssNEx (sleep cassette) and ST7ssNEx (telemetry).

``SC4001E0-PSG.edf`` is subject 00, night 1; its hypnogram ``SC4001EC-Hypnogram.edf`` shares the
first 7 characters (the 8th names the scorer). The toolkit pairs any PSG/hypnogram files that way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAIR_KEY_LEN = 7
_NAME = re.compile(r"^(S[CT])([47])(\d\d)(\d)")


@dataclass(frozen=True)
class RecordingId:
    study: str  # "SC" (sleep cassette) or "ST" (telemetry)
    subject: int
    night: int


def parse_name(name: str) -> RecordingId:
    """Study, subject and night from a Sleep-EDF style name; ValueError if it is not one."""
    m = _NAME.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a Sleep-EDF name (SC4ssN... or ST7ssN...)")
    return RecordingId(study=m.group(1), subject=int(m.group(3)), night=int(m.group(4)))
