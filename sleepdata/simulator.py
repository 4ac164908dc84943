"""PSG simulator: Sleep-EDF-format recordings whose content follows a hypnogram.

Real raw PSG is not available everywhere the toolkit runs, so it is exercised on simulated nights
that match Sleep-EDF *in format* exactly (same 7 signals, labels, rates, ranges, 30-s records,
start time, file names) and that are hard *in content*. Nothing here is real data: results on
simulated nights say that the pipeline works, not how well a model scores real sleep.

How a night is made (details and the tables in docs/simulator.md):

* Every 30-s epoch gets a mixture over six electrophysiological states (W with eyes closed,
  W with eyes open, N1, N2, N3, REM). The scored stage dominates; N1 is mixed with W or REM,
  drowsy wake with N1, N2 next to N3 with N3, so boundary epochs are ambiguous as in real scoring.
* EEG and EOG backgrounds are synthesised in the frequency domain: each epoch's power spectrum
  (1/f background + delta, theta, alpha, sigma-free beta bands, white noise) is sampled as random
  Fourier coefficients over a 60-s segment centred on the epoch; segments are overlap-added with
  sine windows (w1^2 + w2^2 = 1), so power is constant within a state and changes smoothly across
  epoch boundaries.
* Discrete events follow stage-dependent rates: spindles and K-complexes (N2, N3), vertex waves
  (N1), sawtooth trains (REM), blinks and saccades (W), slow eye movements (drowsy W, N1), rapid
  eye movements in bursts (REM), chin twitches (REM), movement bursts and electrode pops.
* The EMG channel is a 1 Hz RMS envelope in uV, as in Sleep-EDF: tone highest in W, lowest in
  REM (atonia), with twitches and movement bursts.
* Subjects differ (EEG amplitude, delta and alpha strength, alpha and spindle frequency, noise
  level, EMG tone, artefact rate); both nights of a subject share traits. Everything derives from
  (seed, subject, night), so a given seed always writes the same files.
"""

from __future__ import annotations

import datetime as dt
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import hypnogen
from .hypnogram import read_hypnogram
from .layout import EPOCH_S
from .names import parse_name
from .provenance import SIMULATOR_MARK
from .psg import HYPNOGRAM_SUFFIX, PSG_SUFFIX
from .psg_writer import write_psg
from .stages import MOVEMENT, N1, N2, N3, REM, UNSCORED, W

FS = 100
L = EPOCH_S * FS  # samples per epoch at 100 Hz

# Electrophysiological states: the scored stage plus eyes-open wake.
S_WC, S_WO, S_N1, S_N2, S_N3, S_REM = range(6)
N_STATES = 6
STAGE_TO_STATE = {W: S_WC, N1: S_N1, N2: S_N2, N3: S_N3, REM: S_REM}

# Spectral components: background 1/f, delta, theta, alpha, beta, white noise.
COMPONENTS = ("background", "delta", "theta", "alpha", "beta")

# fmt: off
# RMS amplitude (uV) of each component per state, per channel.   bg  delta theta alpha beta
_FPZ_RMS = np.array([[7.0, 4.0, 4.0, 5.0, 4.0],  # W eyes closed
                     [7.0, 4.0, 3.0, 2.0, 6.5],  # W eyes open
                     [7.5, 6.0, 9.0, 2.5, 2.5],  # N1
                     [8.5, 13.0, 7.0, 1.5, 2.0],  # N2
                     [9.0, 40.0, 7.0, 1.0, 1.5],  # N3
                     [6.5, 5.0, 7.5, 2.5, 3.0]])  # REM
_PZ_RMS = np.array([[6.0, 3.0, 4.0, 13.0, 3.0],
                    [6.0, 3.0, 3.0, 4.0, 4.5],
                    [6.5, 4.5, 8.0, 4.0, 2.0],
                    [7.0, 9.0, 6.0, 2.0, 1.5],
                    [7.5, 27.0, 6.0, 1.5, 1.0],
                    [5.5, 4.0, 7.0, 4.0, 2.5]])
# EOG background (its own, before the frontal EEG leaks in).
_EOG_RMS = np.array([[8.0, 4.0, 2.0, 1.0, 3.0],
                     [9.0, 4.0, 2.0, 1.0, 4.0],
                     [7.0, 4.0, 2.0, 1.0, 2.0],
                     [6.0, 4.0, 2.0, 0.5, 1.5],
                     [6.0, 4.0, 2.0, 0.5, 1.5],
                     [6.0, 4.0, 2.0, 1.0, 2.0]])
#: Share of the Fpz-Cz signal seen on the horizontal EOG (frontal EEG, N3 delta, leaks in).
EOG_LEAK = 0.35

# Event rates per minute, per state:           Wc   Wo    N1   N2   N3   REM
_RATES = {"spindle":        np.array([0.0, 0.0, 0.3, 3.0, 1.0, 0.0]),
          "k_complex":      np.array([0.0, 0.0, 0.2, 1.2, 0.8, 0.0]),
          "vertex":         np.array([0.0, 0.0, 3.0, 0.3, 0.0, 0.2]),
          "sawtooth":       np.array([0.0, 0.0, 0.1, 0.0, 0.0, 1.5]),
          "blink":          np.array([6.0, 15.0, 1.0, 0.0, 0.0, 0.0]),
          "saccade":        np.array([5.0, 20.0, 0.5, 0.0, 0.0, 0.0]),
          "slow_eye":       np.array([2.0, 0.3, 3.0, 0.3, 0.0, 0.3]),
          "rem_burst":      np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0]),
          "twitch":         np.array([0.0, 0.0, 0.1, 0.1, 0.0, 4.0]),
          "movement":       np.array([0.3, 0.6, 0.3, 0.05, 0.02, 0.05]),
          "electrode_pop":  np.array([0.03, 0.03, 0.03, 0.03, 0.03, 0.03])}
#: EMG envelope tone (uV RMS) per state.
_EMG_TONE = np.array([2.2, 3.0, 1.5, 1.15, 1.0, 0.45])
# fmt: on


@dataclass(frozen=True)
class SubjectTraits:
    """What makes one simulated sleeper different from another (shared by their nights)."""

    eeg_scale: float
    delta_scale: float
    alpha_scale: float
    alpha_hz: float
    spindle_hz: float
    noise_uv: float
    emg_scale: float
    eog_scale: float
    artefact_scale: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SubjectTraits:
        ln = rng.lognormal
        return cls(
            eeg_scale=ln(0, 0.18),
            delta_scale=ln(0, 0.25),
            alpha_scale=ln(0, 0.4),
            alpha_hz=rng.uniform(8.5, 11.5),
            spindle_hz=rng.uniform(12.0, 14.5),
            noise_uv=rng.uniform(0.5, 3.0),
            emg_scale=ln(0, 0.3),
            eog_scale=ln(0, 0.2),
            artefact_scale=ln(0, 0.5),
        )


# ------------------------------------------------------------------------------------------
# Stage mixtures


def _scipy():
    """scipy, which only the simulator needs (the ``simulate`` extra; the rest of the core and
    the host tools do without it)."""
    try:
        import scipy.fft
        import scipy.ndimage
        import scipy.signal
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the PSG simulator needs scipy: pip install 'ulw-sleepnet-mcu[simulate]'"
        ) from exc
    return scipy


def state_mixture(stages: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n_epochs, 6) state weights (rows sum to 1) for a sequence of scored stages.

    UNSCORED epochs take the previous epoch's stage (wake at the start). The mixing rules make
    N1 overlap with W and REM, drowsy wake overlap with N1, and N2/N3 overlap near their
    boundaries.
    """
    stages = np.asarray(stages).copy()
    for i in np.flatnonzero(stages == UNSCORED):  # inherit the previous stage (W at the start)
        stages[i] = stages[i - 1] if i > 0 else W
    n = stages.size
    sleep = np.flatnonzero(stages != W)
    first, last = (sleep[0], sleep[-1]) if sleep.size else (n, -1)
    mix = np.zeros((n, N_STATES))
    u = rng.random((n, 4))
    for i, s in enumerate(stages):
        prev_s = stages[i - 1] if i > 0 else s
        next_s = stages[i + 1] if i + 1 < n else s
        if s == W:
            in_period = first <= i <= last
            near_onset = first - 60 <= i < first
            p_closed = 0.6 if in_period else (0.5 if near_onset else 0.2)
            state = S_WC if u[i, 0] < p_closed else S_WO
            drowsy = 0.1 + 0.35 * u[i, 2] if (in_period or near_onset) and u[i, 1] < 0.4 else 0.0
            mix[i, state] = 1.0 - drowsy
            mix[i, S_N1] = drowsy
        elif s == N1:
            own = 0.5 + 0.35 * u[i, 0]
            rest = 1.0 - own
            if REM in (prev_s, next_s):
                other = S_REM if u[i, 1] < 0.7 else S_WC
            elif N2 in (prev_s, next_s) and u[i, 1] < 0.5:
                other = S_N2
            else:
                other = S_WC if u[i, 1] < 0.75 else S_REM
            mix[i, S_N1], mix[i, other] = own, rest
        elif s == N2:
            share = 0.1 + 0.3 * u[i, 0] if N3 in (prev_s, next_s) else 0.0
            mix[i, S_N2], mix[i, S_N3] = 1.0 - share, share
        elif s == N3:
            share = 0.3 * u[i, 0]
            mix[i, S_N3], mix[i, S_N2] = 1.0 - share, share
        else:  # REM
            share = 0.3 * u[i, 0] if u[i, 1] < 0.3 else 0.0
            mix[i, S_REM], mix[i, S_N1] = 1.0 - share, share
    return mix


# ------------------------------------------------------------------------------------------
# Spectral synthesis


def _component_shapes(traits: SubjectTraits) -> np.ndarray:
    """(n_components + 1, 3001) power shapes over a 60-s segment's rfft bins, each scaled so
    that an rms weight of 1 gives unit variance in the time domain (last row: white noise)."""
    f = _scipy().fft.rfftfreq(2 * L, 1.0 / FS)
    band = (f >= 0.3) & (f <= 45.0)

    def gauss(centre: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((f - centre) / width) ** 2)

    shapes = np.stack(
        [
            np.where(band, 1.0 / np.maximum(f, 0.3) ** 1.2, 0.0),
            np.where(band, gauss(1.0, 0.45), 0.0),
            gauss(5.5, 1.0),
            gauss(traits.alpha_hz, 0.6),
            gauss(21.0, 5.0) * band,
            band.astype(float),
        ]
    )
    # var(irfft(s_k * (a_k + i b_k))) = 4 / N^2 * sum_k s_k^2 for a, b ~ N(0, 1)
    return shapes / shapes.sum(axis=1, keepdims=True) * ((2 * L) ** 2 / 4.0)


def _segment_window() -> np.ndarray:
    t = np.arange(2 * L)
    return np.sin(np.pi * (t + 0.5) / (2 * L)).astype(np.float32)


def synthesise_background(
    rms: np.ndarray, shapes: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A continuous signal whose epoch e has component amplitudes ``rms[e]`` (uV).

    rms: (n_epochs, n_shapes). Returns float32 (n_epochs * 3000,).
    """
    n = rms.shape[0]
    padded = np.concatenate([rms[:1], rms, rms[-1:]])  # segments for epochs -1 .. n
    psd = (padded**2) @ shapes  # (n + 2, 3001)
    amp = np.sqrt(psd, dtype=np.float32)
    coeffs = rng.standard_normal(amp.shape, dtype=np.float32) * amp + 1j * (
        rng.standard_normal(amp.shape, dtype=np.float32) * amp
    )
    segs = _scipy().fft.irfft(coeffs, n=2 * L, axis=1, workers=-1) * _segment_window()
    blocks = np.zeros((n + 3, L), dtype=np.float32)
    blocks[:-1] += segs[:, :L]
    blocks[1:] += segs[:, L:]
    # Segment j (from -1) starts at (j - 0.5) epochs: recording time 0 is buffer index 1.5 L.
    return blocks.reshape(-1)[3 * L // 2 : 3 * L // 2 + n * L]


# ------------------------------------------------------------------------------------------
# Discrete events


def _event_times(
    rates_per_min: np.ndarray, mix: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """Sample indices of events whose rate per epoch follows the state mixture."""
    lam = (mix @ rates_per_min) * (EPOCH_S / 60.0) * scale
    counts = rng.poisson(lam)
    epochs = np.repeat(np.arange(mix.shape[0]), counts)
    return epochs * L + rng.integers(0, L, size=epochs.size)


def _add(signal: np.ndarray, start: int, wave: np.ndarray) -> None:
    end = min(start + wave.size, signal.size)
    if start < end:
        signal[start:end] += wave[: end - start]


def add_eeg_events(
    fpz: np.ndarray,
    pz: np.ndarray,
    mix: np.ndarray,
    traits: SubjectTraits,
    rng: np.random.Generator,
) -> None:
    g = traits.eeg_scale
    for t in _event_times(_RATES["spindle"], mix, rng):
        dur = rng.uniform(0.5, 2.0)
        tt = np.arange(int(dur * FS)) / FS
        wave = np.sin(
            2 * np.pi * (traits.spindle_hz + rng.uniform(-0.8, 0.8)) * tt
            + rng.uniform(0, 2 * np.pi)
        ) * np.hanning(tt.size)
        amp = rng.uniform(12, 35) * g
        _add(fpz, t, amp * wave)
        _add(pz, t, 0.8 * amp * wave)
    for t in _event_times(_RATES["k_complex"], mix, rng):
        tt = np.arange(int(1.2 * FS)) / FS
        amp = rng.uniform(75, 200) * g * traits.delta_scale**0.5
        wave = -np.exp(-0.5 * ((tt - 0.3) / 0.09) ** 2) + 0.55 * np.exp(
            -0.5 * ((tt - 0.7) / 0.16) ** 2
        )
        _add(fpz, t, amp * wave)
        _add(pz, t, 0.5 * amp * wave)
    for t in _event_times(_RATES["vertex"], mix, rng):
        tt = np.arange(int(0.5 * FS)) / FS
        amp = rng.uniform(40, 110) * g
        wave = -np.exp(-0.5 * ((tt - 0.2) / 0.045) ** 2)
        _add(fpz, t, amp * wave)
        _add(pz, t, 0.35 * amp * wave)
    for t in _event_times(_RATES["sawtooth"], mix, rng):
        f0 = rng.uniform(2.0, 3.0)
        tt = np.arange(int(rng.uniform(2.0, 5.0) * FS)) / FS
        saw = 2.0 * ((tt * f0) % 1.0) - 1.0
        wave = saw * np.hanning(tt.size) * rng.uniform(20, 50) * g
        _add(fpz, t, wave)
        _add(pz, t, 0.6 * wave)


def add_eog_events(
    eog: np.ndarray, mix: np.ndarray, traits: SubjectTraits, rng: np.random.Generator
) -> None:
    g = traits.eog_scale
    for t in _event_times(_RATES["blink"], mix, rng):
        tt = np.arange(int(0.6 * FS)) / FS
        _add(eog, t, rng.uniform(20, 80) * g * np.exp(-0.5 * ((tt - 0.25) / 0.07) ** 2))
    decay = np.exp(-np.arange(int(2.5 * FS)) / FS / 0.45)
    for t in _event_times(_RATES["saccade"], mix, rng):
        _add(eog, t, rng.choice([-1, 1]) * rng.uniform(50, 250) * g * decay)
    for t in _event_times(_RATES["slow_eye"], mix, rng):
        tt = np.arange(int(rng.uniform(3.0, 10.0) * FS)) / FS
        f0 = rng.uniform(0.2, 0.5)
        wave = np.sin(2 * np.pi * f0 * tt + rng.uniform(0, 2 * np.pi)) * np.hanning(tt.size)
        _add(eog, t, rng.uniform(50, 150) * g * wave)
    rapid = np.exp(-np.arange(int(1.0 * FS)) / FS / 0.2)
    for t in _event_times(_RATES["rem_burst"], mix, rng):
        for k in range(rng.integers(3, 12)):
            _add(
                eog,
                t + int(k * rng.uniform(0.4, 1.5) * FS),
                rng.choice([-1, 1]) * rng.uniform(100, 300) * g * rapid,
            )


def add_artefacts(
    chans: list[np.ndarray],
    emg: np.ndarray,
    mix: np.ndarray,
    traits: SubjectTraits,
    rng: np.random.Generator,
) -> None:
    """Movement bursts on every channel (and the EMG) and electrode pops on one channel."""
    for t in _event_times(_RATES["movement"], mix, rng, traits.artefact_scale):
        dur = int(rng.uniform(2.0, 10.0) * FS)
        env = np.hanning(dur)
        for ch in chans:
            _add(ch, t, rng.uniform(60, 300) * env * rng.standard_normal(dur))
        sec = t // FS
        emg[sec : sec + dur // FS + 1] += rng.uniform(1.5, 4.0)
    pop = np.exp(-np.arange(int(4 * FS)) / FS / rng.uniform(0.5, 2.0))
    for t in _event_times(_RATES["electrode_pop"], mix, rng, traits.artefact_scale):
        ch = chans[rng.integers(0, len(chans))]
        _add(ch, t, rng.choice([-1, 1]) * rng.uniform(50, 150) * pop)


def emg_envelope(mix: np.ndarray, traits: SubjectTraits, rng: np.random.Generator) -> np.ndarray:
    """1 Hz submental EMG RMS envelope (uV), before artefacts."""
    n = mix.shape[0]
    tone = (mix @ _EMG_TONE) * traits.emg_scale * rng.lognormal(0, 0.2, n)
    centres = (np.arange(n) + 0.5) * EPOCH_S
    secs = np.arange(n * EPOCH_S) + 0.5
    env = np.interp(secs, centres, tone)
    # slow multiplicative fluctuation (about 5 s correlation)
    wobble = np.convolve(rng.standard_normal(secs.size + 10), np.ones(10) / np.sqrt(10), "valid")
    env *= np.exp(0.12 * wobble[: secs.size])
    for t in _event_times(_RATES["twitch"], mix, rng):
        s = t // FS
        env[s : s + rng.integers(1, 3)] += rng.uniform(0.5, 2.0)
    return env


# ------------------------------------------------------------------------------------------
# A whole night


@dataclass
class SimulatedNight:
    start: dt.datetime
    signals: list[np.ndarray]  # physical units, one per SLEEP_CASSETTE_SIGNALS entry


def _jitter(n: int, rng: np.random.Generator, sd: float = 0.2, rho: float = 0.8) -> np.ndarray:
    """Slowly varying lognormal factors, one per epoch (AR(1) in the log domain)."""
    e = rng.standard_normal(n) * sd * np.sqrt(1 - rho**2)
    e[0] = rng.standard_normal() * sd  # start in the stationary distribution
    return np.exp(_scipy().signal.lfilter([1.0], [1.0, -rho], e))


def simulate_night(
    stages: np.ndarray, start: dt.datetime, traits: SubjectTraits, rng: np.random.Generator
) -> SimulatedNight:
    """Signals for a night scored as ``stages`` (one AASM label or UNSCORED per 30-s epoch)."""
    n = int(np.asarray(stages).size)
    mix = state_mixture(stages, rng)
    shapes = _component_shapes(traits)
    per_comp = np.array([1.0, traits.delta_scale, 1.0, traits.alpha_scale, 1.0])

    def channel_rms(table: np.ndarray, gain: float) -> np.ndarray:
        rms = np.sqrt(mix @ table**2) * per_comp * gain
        rms *= _jitter(n * rms.shape[1], rng).reshape(rms.shape[1], n).T
        white = np.full((n, 1), traits.noise_uv)
        return np.hstack([rms, white])

    fpz = synthesise_background(channel_rms(_FPZ_RMS, traits.eeg_scale), shapes, rng)
    pz = synthesise_background(channel_rms(_PZ_RMS, traits.eeg_scale), shapes, rng)
    eog = synthesise_background(channel_rms(_EOG_RMS, traits.eog_scale), shapes, rng)
    add_eeg_events(fpz, pz, mix, traits, rng)
    eog += EOG_LEAK * fpz
    add_eog_events(eog, mix, traits, rng)
    emg = emg_envelope(mix, traits, rng)
    add_artefacts([fpz, pz, eog], emg, mix, traits, rng)

    secs = np.arange(n * EPOCH_S)
    asleep = np.interp(secs, (np.arange(n) + 0.5) * EPOCH_S, 1.0 - mix[:, S_WC] - mix[:, S_WO])
    breath_hz = 0.27 - 0.04 * asleep
    resp = (
        rng.uniform(300, 700)
        * np.sin(2 * np.pi * np.cumsum(breath_hz))
        * (1 + 0.15 * rng.standard_normal(secs.size))
    )
    temp_drift = _scipy().ndimage.uniform_filter1d(asleep, 1800, mode="nearest")  # 30-min lag
    temp = 37.3 + 0.3 * np.sin(2 * np.pi * secs / 86400.0) - 0.5 * temp_drift
    temp += 0.01 * rng.standard_normal(secs.size)
    marker = np.zeros(secs.size)
    return SimulatedNight(start, [fpz, pz, eog, resp, emg, temp, marker])


# ------------------------------------------------------------------------------------------
# From hypnograms to files


def traits_for(name: str, seed: int) -> tuple[SubjectTraits, np.random.Generator]:
    """Subject traits (shared by a subject's nights) and the night's own random generator."""
    try:
        ids = parse_name(name)
        subject_key, night_key = ids.subject, ids.night
    except ValueError:
        subject_key, night_key = zlib.crc32(name.encode()), 0
    traits = SubjectTraits.draw(np.random.default_rng([seed, subject_key, 0]))
    return traits, np.random.default_rng([seed, subject_key, night_key, 1])


def recorded_epochs(stages: np.ndarray) -> int:
    """Epochs the PSG covers: up to the last scored one (Sleep-EDF hypnograms continue with an
    unscored "?" stretch past the end of the signal)."""
    scored = np.flatnonzero(stages != UNSCORED)
    return int(scored[-1]) + 1 if scored.size else 0


def psg_name_for(hypnogram_path: Path) -> str:
    """SC4001EC-Hypnogram.edf -> SC4001E0-PSG.edf (Sleep-EDF's naming: the record name's last
    character names the scorer in a hypnogram, the version in a PSG); SG01001EG -> SG01001E0."""
    name = hypnogram_path.name
    if not name.lower().endswith(HYPNOGRAM_SUFFIX.lower()):
        return name[:7] + "0" + PSG_SUFFIX
    return name[: -len(HYPNOGRAM_SUFFIX) - 1] + "0" + PSG_SUFFIX


def simulate_from_hypnogram(
    hypnogram_path: str | Path, out_dir: str | Path, *, seed: int = 0
) -> tuple[Path, Path]:
    """Write the PSG for a hypnogram (and a copy of the hypnogram) into ``out_dir``."""
    hyp_path = Path(hypnogram_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hyp = read_hypnogram(hyp_path)
    stages = hyp.stage_grid()
    # Movement time has no AASM stage: it is simulated as wake (with its movement bursts).
    stages[stages == MOVEMENT] = W
    n = recorded_epochs(stages)
    name = hyp_path.name[:8]
    traits, rng = traits_for(name, seed)
    night = simulate_night(stages[:n], hyp.start, traits, rng)
    psg_path = out_dir / psg_name_for(hyp_path)
    tmp = psg_path.with_suffix(".edf.part")
    write_psg(
        tmp,
        night,
        patient=f"Simulated_{name[:6]}",
        recording=f"{SIMULATOR_MARK}_seed_{seed}_not_a_real_recording",
    )
    tmp.replace(psg_path)
    hyp_copy = out_dir / hyp_path.name
    if hyp_copy.resolve() != hyp_path.resolve():
        shutil.copyfile(hyp_path, hyp_copy)
    return psg_path, hyp_copy


def simulate_generated(
    out_dir: str | Path, n_nights: int, *, seed: int = 0
) -> list[tuple[Path, Path]]:
    """``n_nights`` simulated nights of generated subjects (90 and up, two nights each), from
    generated hypnograms: (PSG, hypnogram) pairs, both written into ``out_dir``."""
    out_dir = Path(out_dir)
    hyps = hypnogen.generated_hypnograms(out_dir, n_nights, seed)
    return [simulate_from_hypnogram(hyp, out_dir, seed=seed) for hyp in hyps]
