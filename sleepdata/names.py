"""Sleep-EDF file names: SC4ssNEx (sleep cassette) and ST7ssNEx (telemetry), and the toolkit's
generated-subject names SGssssNEx.

``SC4001E0-PSG.edf`` is subject 00, night 1; its hypnogram ``SC4001EC-Hypnogram.edf`` shares the
first 7 characters (the 8th names the scorer). The toolkit pairs any PSG/hypnogram files that way.
Sleep-EDF's two-digit subject numbers end at 99, so generated subjects from 100 on (made by
``python -m training simulate --nights N`` for large N) are named ``SG`` + a four-digit subject +
the night: ``SG01001E0-PSG.edf`` / ``SG01001EG-Hypnogram.edf`` is subject 100, night 1; its
first 7 characters pair it the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAIR_KEY_LEN = 7
_SLEEP_EDF = re.compile(r"^(S[CT])([47])(\d\d)(\d)")
_GENERATED = re.compile(r"^(SG)(\d{4})(\d)")
#: Subjects the SG form can number.
MAX_SUBJECT = 9999


@dataclass(frozen=True)
class RecordingId:
    study: str  # "SC" (sleep cassette), "ST" (telemetry) or "SG" (generated, subject >= 100)
    subject: int
    night: int


def parse_name(name: str) -> RecordingId:
    """Study, subject and night from a Sleep-EDF style name; ValueError if it is not one."""
    m = _SLEEP_EDF.match(name)
    if m is not None:
        return RecordingId(study=m.group(1), subject=int(m.group(3)), night=int(m.group(4)))
    m = _GENERATED.match(name)
    if m is not None:
        return RecordingId(study="SG", subject=int(m.group(2)), night=int(m.group(3)))
    raise ValueError(f"{name!r} is not a Sleep-EDF name (SC4ssN..., ST7ssN... or SGssssN...)")


def record_stem(subject: int, night: int, version: str) -> str:
    """The 8- or 9-character record name of a generated night: SC4ssN + "E" + version for
    subjects below 100 (Sleep-EDF's form), SGssssN + "E" + version from 100 on."""
    if not 0 <= subject <= MAX_SUBJECT or not 0 <= night <= 9:
        raise ValueError(f"subject {subject} night {night}: no Sleep-EDF style name")
    if subject < 100:
        return f"SC4{subject:02d}{night}E{version}"
    return f"SG{subject:04d}{night}E{version}"
