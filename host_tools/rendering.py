"""report.json's figures for people: ``report.md``, the few lines printed at the end of a
stream (and of ``host_tools report``) and the board's self-description (``host_tools info``).
Undefined or unavailable figures read "n/a". Nothing here prints."""

from __future__ import annotations

import math
from pathlib import Path

from sleepdata.layout import EPOCH_SAMPLES
from sleepdata.stages import N_STAGES, STAGE_NAMES

from .protocol import CounterKind, Info
from .runfolder import REPORT_MD, RESULTS

_S = STAGE_NAMES


def _f(v, fmt: str = ".3f") -> str:
    """``v`` formatted, "n/a" when it is not available or undefined (None, NaN)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, fmt)


def _scores_rows(name: str, s: dict) -> str:
    f1 = " | ".join(_f(s["per_class_f1"][k]) for k in _S)
    return f"| {name} | {_f(s['acc'])} | {_f(s['macro_f1'])} | {_f(s['kappa'])} | {f1} |"


def _confusion_md(title: str, cm) -> list[str]:
    lines = [f"{title} (rows expert, columns predicted):", ""]
    lines.append("| expert \\ predicted | " + " | ".join(_S) + " |")
    lines.append("|---" * (N_STAGES + 1) + "|")
    for name, row in zip(_S, cm, strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return [*lines, ""]


def _noise_text(noise: dict | None) -> str:
    if not noise:
        return "none"
    return f"{noise['spec']} (seed {noise['seed']}; statistics: {noise['stats']['source']})"


def _adversarial_text(adv: dict | None) -> str:
    if not adv:
        return "none"
    band = adv.get("test_time_filter")
    if band:  # not an attack: inputs band-passed on the host (training robustness)
        return (
            f"none; the epochs are the int16 wire samples of `{adv['file']}`: condition "
            f"{adv.get('condition')}, band-passed {band.get('low_hz')}-{band.get('high_hz')} Hz "
            "on the host"
        )
    return (
        f"{adv['attack']} eps {adv['eps_uv']:g} uV (of Fpz-Cz), the int16 wire samples of "
        f"`{adv['file']}` ({adv['crafted_on']})"
    )


def _epochs_text(r: dict) -> str:
    span = r["last_epoch"] - r["first_epoch"] + 1
    subset = "" if span == r["epochs"] else f", {r['epochs']} of them"
    return f"{r['epochs']} (recording epochs {r['first_epoch']}..{r['last_epoch']}{subset})"


def _cycles_lines(ce: dict | None) -> list[str]:
    """report.md's cycle estimate section (docs/cycles.md)."""
    if not ce:
        return []
    if not ce.get("made"):
        return [f"- Cycle estimate: not made ({ce.get('why')}).", ""]
    e = ce["per_epoch"]
    lines = [
        f"### Estimated cycles (epochs {', '.join(map(str, ce['epochs']))}; model "
        f"{ce['model']} {ce['model_hash']})",
        "",
        f"{ce['estimate']}. The estimate's instruction counts equal this run's counts of the "
        "same epochs.",
        "",
        "| memory setting | cycles per inference | cycles/MAC | cycles/instruction |",
        "|---|---|---|---|",
    ]
    for k, desc in ce["memory_settings"].items():
        lines.append(
            f"| {k}: {desc} | {e['cycles'][k]:,} | {e['cycles_per_mac'][k]:.2f} | "
            f"{e['cycles_per_instruction'][k]:.3f} |"
        )
    if "cycles_per_model_mac" in e:
        per = ", ".join(f"{k} {v:.2f}" for k, v in e["cycles_per_model_mac"].items())
        lines += [
            "",
            f"Per MAC of the trained network ({e['model_macs']:,} MACs; the int8 graph composes "
            f"its shortcut streams): {per} cycles/MAC.",
        ]
    mix = ", ".join(f"{k} {v:.1%}" for k, v in e["mix"].items())
    lines += ["", f"Instruction mix: {mix}.", ""]
    return lines


def render_markdown(r: dict) -> str:
    """report.md: the same figures as report.json, for people."""
    rec = r["recording"]
    kind = r["counter_kind"]
    cnt = r["count_per_epoch"]
    e = r["energy"]
    lines = [
        f"# Stream report: {Path(rec['path']).name}",
        "",
        f"- Recording: `{rec['path']}` (hypnogram `{rec['hypnogram']}`)",
        f"- **{rec['note']}**",
        f"- Epochs: {_epochs_text(r)}",
        f"- Noise: {_noise_text(r['noise'])}",
        f"- Adversarial epochs: {_adversarial_text(r.get('adversarial'))}",
        f"- Board: {r['board']}, firmware {r['firmware_version']} "
        f"(build {r['firmware_build_hash']:#010x}), model {r['model_hash']}",
        "",
        "## On-chip results against the references",
        "",
        f"- Bit-exact vs TFLite Micro: **{r['bitexact_vs_tflm']:.4f}** "
        f"({r['epochs'] - r['mismatches']} of {r['epochs']} epochs; tolerance: "
        f"{r['bitexact_tolerance']})",
        f"- Stage agreement with the float (ONNX) model: {r['agreement_vs_float']:.4f}",
    ]
    if r["mismatch_list"]:
        lines += ["", "First mismatches (epoch: on-chip scores vs TFLite Micro):", ""]
        for m in r["mismatch_list"][:10]:
            lines.append(f"- epoch {m['epoch']}: actual {m['actual']} expected {m['expected']}")
    lines += [
        "",
        "## Scores against the expert hypnogram",
        "",
        "| model | ACC | macro-F1 | kappa | " + " | ".join(f"F1 {s}" for s in _S) + " |",
        "|---" * (4 + N_STAGES) + "|",
        _scores_rows("on-chip (int8)", r["onchip_vs_expert"]),
        _scores_rows("float (ONNX)", r["float_vs_expert"]),
        "",
        *_confusion_md("On-chip", r["onchip_vs_expert"]["confusion"]),
        *_confusion_md("Float", r["float_vs_expert"]["confusion"]),
    ]
    if rec["simulated"]:
        lines += [
            "These scores are on a simulated recording: they show that the pipeline works, "
            "not how well the model scores real sleep.",
            "",
        ]
    lines += [
        f"## Work on the board (counts are {kind})",
        "",
        "| per epoch | min | median | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for name in ("preprocess", "inference", "total"):
        c = cnt[name]
        lines.append(
            f"| {name} | {c['min']:,} | {c['median']:,.0f} | {c['p99']:,.0f} | {c['max']:,} |"
        )
    lines += [
        "",
        f"- At the board's clock ({r['core_clock_hz'] / 1e6:g} MHz): "
        f"{r['board_s_per_epoch'] * 1e3:.1f} ms per 30-s epoch, real-time factor "
        f"{r['real_time_factor']:.4f} ({_f(r['x_real_time'], '.0f')}x faster than real time); "
        f"assumes {r['real_time_assumes']}.",
        f"- Energy (**estimate**, {e['profile']} / {e['mcu']}): {e['energy_per_epoch_mj']:.2f} mJ "
        f"per epoch, **{e['energy_per_night_j']:.1f} J per 8-h night** "
        f"({e['night_epochs']} epochs), {e['average_current_ua']:.0f} uA average at "
        f"{e['supply_v']:g} V; assumes {e['assumes']}.",
        "",
    ]
    lines += _cycles_lines(r.get("cycles_estimate"))
    if r["per_layer"]:
        lines += [
            f"### Per layer (epoch {r['per_layer_epoch']}; {r['macs_per_epoch']:,} MACs, "
            f"{_f(r['inference_per_mac'], '.2f')} {kind} per MAC over the inference)",
            "",
        ]
        if r.get("model_macs_per_epoch"):
            lines += [
                f"Per MAC of the trained network ({r['model_macs_per_epoch']:,} MACs; the int8 "
                f"graph composes its shortcut streams): "
                f"{_f(r['inference_per_model_mac'], '.2f')} {kind}.",
                "",
            ]
        lines += [
            f"| layer | {kind} | MACs | per MAC |",
            "|---|---|---|---|",
        ]
        for row in r["per_layer"]:
            lines.append(
                f"| {row['layer']} | {row['count']:,} | {row['macs']:,} | "
                f"{_f(row['per_mac'], '.2f')} |"
            )
        lines.append("")
    lines += [
        "## Transfer and host",
        "",
        f"- Streamed {_f(r['epochs_per_s'], '.2f')} epochs/s, "
        f"host -> board {_f(r['host_to_board_kBps'], '.1f')} kB/s, "
        f"{r['bytes_sent']:,} bytes sent, {r['retries']} retries",
        f"- Samples over {_n_sessions(r)}: sent "
        f"{r['samples_sent']:,}, acknowledged "
        f"{_f(r['samples_acked'], ',')}, scored {r['samples_scored']:,}: "
        f"{'none dropped' if r['no_sample_dropped'] else 'MISMATCH'} ({r['sample_check']})"
        + _in_flight_text(r["samples_in_flight_at_interruptions"])
        + _recovered_text(r),
        f"- Host CPU {_f(r['host_cpu_ms_per_epoch'], '.1f')} ms per epoch while streaming "
        f"(framing, sending, bookkeeping); the references on their own process "
        f"{_f(r['reference_cpu_ms_per_epoch'], '.1f')} ms (TFLite Micro and ONNX)",
        *_link_lines(r.get("link")),
        f"- Wall time {r['wall_s']:.1f} s over {len(r['sessions'])} session(s), "
        f"{r['stream_s']:.1f} s of it streaming",
        "",
        "| session | status | epochs | wall s | setup s | stream s | epochs/s | CPU ms/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(r["sessions"]):
        eps = s["epochs"] / s["stream_s"] if s.get("stream_s") else None
        timed = s.get("epochs") and s.get("stream_cpu_s") is not None
        cpu = s["stream_cpu_s"] / s["epochs"] * 1e3 if timed else None
        lines.append(
            f"| {i + 1} | {s.get('status')} | {s.get('epochs')} | {_f(s.get('wall_s'), '.1f')} | "
            f"{_f(s.get('setup_s'), '.1f')} | {_f(s.get('stream_s'), '.1f')} | {_f(eps, '.2f')} "
            f"| {_f(cpu, '.1f')} |"
        )
    return "\n".join(lines) + "\n"


def _in_flight_text(samples: int) -> str:
    if not samples:
        return ""
    return f"; {samples:,} were in flight at interruptions (resume streams those epochs again)"


def _recovered_text(r: dict) -> str:
    """What the sample figures took from results.csv for sessions killed without a record."""
    missing = r.get("sessions_without_record") or 0
    if not missing:
        return ""
    epochs = (r.get("samples_recovered_from_results") or 0) // EPOCH_SAMPLES
    which = "a session" if missing == 1 else f"{missing} sessions"
    return (
        f"; {which} ended without a record (killed): {epochs:,} epochs counted from "
        f"{RESULTS} as sent and scored"
    )


def _link_lines(link: dict | None) -> list[str]:
    """The link section of the summary: wire, bytes per epoch, the board's receive count, and
    a night's seconds at real UART rates (report.link_figures)."""
    if not link or link.get("bytes_per_epoch") is None:
        return []
    how = "coded (SAMPLES_RICE)" if link["samples_coded"] else "raw"
    lines = [
        f"- Wire {link['wire']}: samples sent {how}, {link['bytes_per_epoch']:,.0f} bytes per "
        f"epoch ({link['raw_bytes_per_epoch']:,} in raw frames: "
        f"{_f(link['ratio_vs_raw'], '.2f')}x)"
    ]
    if link.get("board_receive_count_per_epoch") is not None:
        lines.append(
            f"- Board receive work {link['board_receive_count_per_epoch']:,.0f} per epoch "
            "(storing the samples, decoding included; same unit as the counts above)"
        )
    bauds = ", ".join(
        f"{int(b):,} baud {v['as_sent_s']:.0f} s (raw {v['raw_s']:.0f} s)"
        for b, v in link["night_s_at_baud"].items()
    )
    lines.append(f"- A night of {link['night_epochs']} epochs on a real UART: {bauds}")
    return lines


def _n_sessions(r: dict) -> str:
    n = len(r["sessions"])
    return "1 session" if n == 1 else f"all {n} sessions"


def _sessions_text(r: dict) -> str:
    n = len(r["sessions"])
    return f" over {n} sessions" if n > 1 else ""


def _cycles_summary(ce: dict | None) -> list[str]:
    if not ce or not ce.get("made"):
        return []
    e = ce["per_epoch"]
    # per MAC of the trained network when the graph computes fewer (what peers divide by)
    per_mac = e.get("cycles_per_model_mac") or e["cycles_per_mac"]
    figures = ", ".join(f"{v:,} {k} ({per_mac[k]:.2f}/MAC)" for k, v in e["cycles"].items())
    whose = "; per MAC of the trained network" if "cycles_per_model_mac" in e else ""
    return [
        f"estimated cycles per inference (not measured; {len(ce['epochs'])} epochs{whose}): "
        f"{figures}"
    ]


def summary_text(r: dict, folder: str | Path) -> str:
    """The few lines printed at the end of a stream."""
    e = r["energy"]
    return "\n".join(
        [
            f"{r['epochs']} epochs of {r['recording']['path']}"
            + (" (simulated)" if r["recording"]["simulated"] else "")
            + (f"; noise {r['noise']['spec']}" if r.get("noise") else "")
            + (
                f"; adversarial {r['adversarial']['attack']} eps {r['adversarial']['eps_uv']:g}"
                if r.get("adversarial")
                else ""
            ),
            f"bit-exact vs TFLite Micro {r['bitexact_vs_tflm']:.4f} ({r['mismatches']} "
            f"mismatches), agreement vs float {r['agreement_vs_float']:.4f}",
            f"vs expert: ACC {r['acc_vs_expert']:.3f}  macro-F1 {_f(r['macro_f1_vs_expert'])}  "
            f"kappa {_f(r['kappa_vs_expert'])}"
            + (" (one stage throughout: undefined)" if r["kappa_vs_expert"] is None else ""),
            f"{r['counter_kind']} per epoch: median {r['count_per_epoch_median']:,.0f} "
            f"(real-time factor {r['real_time_factor']:.4f} at "
            f"{r['core_clock_hz'] / 1e6:g} MHz); energy estimate "
            f"{e['energy_per_night_j']:.1f} J per 8-h night ({e['profile']})",
            *_cycles_summary(r.get("cycles_estimate")),
            f"wall {r['wall_s']:.1f} s{_sessions_text(r)}, {_f(r['epochs_per_s'], '.2f')} "
            "epochs/s, host CPU "
            f"{_f(r['host_cpu_ms_per_epoch'], '.1f')} ms/epoch, "
            f"{_f(r['host_to_board_kBps'], '.1f')} kB/s; samples sent {r['samples_sent']:,}, "
            f"acked {_f(r['samples_acked'], ',')}, scored {r['samples_scored']:,}: "
            f"{'none dropped' if r['no_sample_dropped'] else 'MISMATCH'}"
            + _in_flight_text(r["samples_in_flight_at_interruptions"])
            + _recovered_text(r),
            f"report: {Path(folder) / REPORT_MD}",
        ]
    )


def faults_text(r: dict) -> str:
    """The line printed after the summary of a ``--faults`` stream (report.json's "faults")."""
    f = r["faults"]
    return (
        f"faults injected: {sum(f['injected'].values()):,} ({f['injected']}); recovered with "
        f"{f['frames_resent']:,} frames resent, {f['resyncs']} resyncs, {f['relinks']} relinks, "
        f"{f['restarts']} board restarts; {f['epochs_scored']} epochs scored"
    )


def info_text(info: Info) -> str:
    """``host_tools info``: the board's INFO, one ``name value`` line per field, in the
    reports' formats (build hash in hex, the counter kind by name, the model hash in hex)."""
    shown = {
        "firmware_version": info.firmware_version,
        "build_hash": f"{info.build_hash:#010x}",
        "protocol_version": info.protocol_version,
        "model_hash": info.model_hash.hex(),
        "board": info.board,
        "channels": info.channels,
        "sample_rate_hz": info.sample_rate_hz,
        "epoch_samples": info.epoch_samples,
        "norm": info.norm,
        "static_ram_bytes": f"{info.static_ram_bytes:,}",
        "counter_kind": CounterKind(info.counter_kind).name.lower(),
        "core_clock_hz": f"{info.core_clock_hz:,}",
        # the deepest stack use since the board's reset: right after a boot that is the
        # start-up's, an epoch's inference goes deeper
        "stack_peak_bytes": f"{info.stack_peak_bytes:,} since reset",
    }
    return "\n".join(f"{key:<18}{value}" for key, value in shown.items())


def _f1(v: float | None, width: int) -> str:
    return format(_f(v), f">{width}")


def onchip_text(result: dict) -> str:
    """The summary ``host_tools robustness`` prints at the end (onchip.json): one line per
    condition."""
    kind = result["counter_kind"] or "count"
    lines = [
        f"{'condition':<38} {'epochs':>11} {'on chip F1':>10} {'TFLM F1':>8} {'host int8':>9} "
        f"{'bit-exact':>9} {'median ' + kind:>20}"
    ]
    for c in result["conditions"]:
        name = f"{c['kind']} {c['level']} ({c['value']:g})" if c["level"] != "-" else c["kind"]
        if c.get("skipped"):
            lines.append(f"{name:<38} skipped: {c['skipped']}")
            continue
        host = c["host"]["int8_macro_f1"]
        lines.append(
            f"{name:<38} {c['n_epochs']:>5,}/{c['n_epochs_host']:<5,} "
            f"{_f1(c['onchip']['macro_f1'], 10)} {_f1(c['tflm_int8']['macro_f1'], 8)} "
            f"{format('-', '>9') if host is None else _f1(host, 9)} {c['bitexact']:>9.4f} "
            f"{c['count_per_epoch_median']:>20,.0f}"
        )
    s = result.get("this_session") or {}
    if s.get("epochs_streamed"):
        lines.append(
            f"{s['epochs_streamed']:,} epochs streamed in {s['wall_s']:.1f} s "
            f"({s['s_per_epoch']:.3f} s per epoch, set-up and reports included)"
        )
    lines.append("bit-exact on every condition" if result["all_bitexact"] else "NOT BIT-EXACT")
    if result["truncated"]:
        lines.append(f"--max-epochs {result['max_epochs']}: fewer epochs than the host figures")
    return "\n".join(lines)


def cohort_summary_text(r: dict, folder: str | Path) -> str:
    """What ``host_tools stream`` prints after a cohort (host_tools.cohort_report's report)."""
    label = r["data_provenance"]["label"] if r["data_provenance"] else "no finished night"
    lines = [
        f"{len(r['nights'])} nights ({label}): {r['nights_done']} done, {r['nights_failed']} "
        f"failed, {r['nights_pending']} pending",
    ]
    p = r["pooled"]
    if p is not None:
        o, s = p["onchip_vs_expert"], r["per_night"]["onchip"]["kappa"]
        lines.append(
            f"pooled over {p['epochs']:,} epochs: bit-exact {p['bitexact']:.4f}; on-chip vs expert "
            f"ACC {_f(o['acc'])}  macro-F1 {_f(o['macro_f1'])}  kappa {_f(o['kappa'])}"
            + ("" if s is None else f" (per night {s['mean']:.3f} +- {s['std']:.3f})")
        )
    if r["sessions"]:
        last = r["sessions"][-1]
        rate = last["epochs"] / last["wall_s"] if last["wall_s"] > 0 else 0.0
        lines.append(
            f"last session: {last['epochs']:,} epochs in {last['wall_s']:.1f} s through "
            f"{last['boards']} board(s) ({rate:.2f} epochs/s)"
        )
    for n in r["nights"]:
        if n["status"] == "failed":
            lines.append(f"FAILED {n['name']}: {n['error']}")
    lines.append(f"report: {Path(folder) / 'report.md'}")
    return "\n".join(lines)
