"""The link coding's figures (`make bench-link`): how far SAMPLES_RICE (docs/protocol.md, "Coded
samples") shrinks the samples of a cohort's nights, per channel and overall, in the frames the
host sends on a clean link (125 samples; a frame that does not code shorter goes raw).

Each night is read as `host_tools stream` reads it and converted to the int16 wire samples with
the model's normalisation. Per channel: coded bits (its k nibble, its first sample, its codes)
against 16 bits per raw sample. Overall: bytes per epoch on the wire, frame header and CRC
included, raw against coded. One frame in 50 is decoded again and compared.

    python scripts/link_ratio.py build/sim35 [--model DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from host_tools.protocol import CRC_LEN, HEADER_LEN, MAX_SAMPLES_PER_FRAME, N_CHANNELS
from host_tools.reference import ModelFiles
from host_tools.samples import (
    decode_samples_rice,
    encode_rice_frames,
    rice_parameters,
    zigzag_residuals,
)
from sleepdata.normalise import Normaliser
from sleepdata.provenance import describe
from sleepdata.psg import discover_pairs, load_recording

FRAME = MAX_SAMPLES_PER_FRAME
RAW_FRAME_BYTES = HEADER_LEN + 6 + 8 * FRAME + CRC_LEN
CHECK_EVERY = 50  # frames decoded again and compared (the Python decoder is slow)


def night_figures(wire: np.ndarray) -> dict:
    """wire (n, 4, 3000) int16 -> coded bits per channel, raw and sent bytes, over the night."""
    n = len(wire)
    frames = wire.transpose(0, 2, 1).reshape(-1, FRAME, N_CHANNELS)  # (n x 24, 125, 4)
    u = zigzag_residuals(frames)
    k = rice_parameters(u)
    bits = (u >> k[:, None, :]).sum(axis=1, dtype=np.int64) + (FRAME - 1) * (1 + k) + 4 + 16
    firsts = np.arange(len(frames)) * FRAME
    sent = 0
    for lo in range(0, len(frames), 240):
        coded = encode_rice_frames(firsts[lo : lo + 240], frames[lo : lo + 240])
        for f, payload in enumerate(coded, start=lo):
            if f % CHECK_EVERY == 0 and not np.array_equal(
                decode_samples_rice(payload)[1], frames[f]
            ):
                raise SystemExit(f"frame {f} does not decode to its samples")
            sent += HEADER_LEN + min(len(payload), 6 + 8 * FRAME) + CRC_LEN
    return {
        "epochs": n,
        "channel_bits": bits.sum(axis=0).tolist(),
        "raw_channel_bits": [16 * FRAME * len(frames)] * N_CHANNELS,
        "raw_bytes": RAW_FRAME_BYTES * len(frames),
        "sent_bytes": sent,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="folder of Sleep-EDF-layout nights")
    ap.add_argument("--model", type=Path, default=None, help="model folder (the shipped one)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = ap.parse_args(argv)
    model = ModelFiles.load(args.model)
    norm = Normaliser.from_dict(model.config["normalisation"])
    pairs = discover_pairs(args.data)
    if not pairs:
        raise SystemExit(f"{args.data}: no Sleep-EDF-layout nights (*-PSG.edf with hypnograms)")
    total: dict = {}
    for i, pair in enumerate(pairs, 1):
        rec = load_recording(pair)
        fig = night_figures(norm.to_wire(rec.epochs))
        for key, value in fig.items():
            total[key] = np.add(total.get(key, 0), value).tolist()
        print(f"{i}/{len(pairs)} {pair.name}: {fig['raw_bytes'] / fig['sent_bytes']:.3f}x",
              file=sys.stderr)  # fmt: skip
    names = [c["name"] for c in model.config["normalisation"]["channels"]]
    out = {
        "data": str(args.data),
        "provenance": describe(p.psg for p in pairs)["label"],
        "nights": len(pairs),
        "epochs": total["epochs"],
        "ratio_per_channel": {
            name: raw / coded
            for name, raw, coded in zip(
                names, total["raw_channel_bits"], total["channel_bits"], strict=True
            )
        },
        "bits_per_sample_per_channel": {
            name: coded / (raw / 16)
            for name, raw, coded in zip(
                names, total["raw_channel_bits"], total["channel_bits"], strict=True
            )
        },
        "raw_bytes_per_epoch": total["raw_bytes"] / total["epochs"],
        "coded_bytes_per_epoch": total["sent_bytes"] / total["epochs"],
        "ratio_overall": total["raw_bytes"] / total["sent_bytes"],
    }
    print(f"{out['nights']} nights, {out['epochs']} epochs ({out['provenance']})")
    for name in names:
        print(f"  {name:16s} {out['ratio_per_channel'][name]:.2f}x "
              f"({out['bits_per_sample_per_channel'][name]:.2f} bits per sample)")  # fmt: skip
    print(
        f"  bytes per epoch on the wire: raw {out['raw_bytes_per_epoch']:,.0f}, coded "
        f"{out['coded_bytes_per_epoch']:,.0f}: {out['ratio_overall']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
