"""Measurements of any streaming resampler: withheld delay, tone gain, alias level, cost per push.

Everything here works on the small :class:`StreamingResampler` protocol (``push`` int16 in,
int16 mono out; ``flush``), so ``bridge.bench.resampling_report`` can measure our
:class:`~resampling.Resampler` and ``livekit.rtc.AudioResampler`` (through an adapter) with the
same code. Figures come from int16 output, like the bridge receives it, so levels below about
-92 dB (a 0.9 full-scale tone against half an LSB) are reported as a bound, not a value.

Definitions:

- *withheld* after a push: the output the input so far is worth
  (``samples_in * out_rate / in_rate``) minus the output released so far, in ms. It is the delay
  a resampler adds beyond the frame itself. Fixed-rate libsoxr releases output in blocks, so a
  single impulse can be lucky with the block phase; :func:`withheld_delay` takes the mean and
  the maximum after every push of a long noise run.
- *gain* at f: amplitude of the least-squares fit of a sine at f to the steady part of the
  output of a 0.9 full-scale tone at f, relative to the input amplitude.
- *spurious level* of a tone at f: RMS of everything in the steady output except that fitted
  tone, relative to the tone's RMS. For a tone the output band cannot hold (f above half the
  output rate) that is all of the output: the alias. Below it, it is images, distortion and
  rounding noise.

The quality bar (from the issue) and the choice rule live here too, so that the report applies
them to what it measured: flat within ±0.5 dB up to the band edge, spurious below -80 dB, then
the least worst-case withheld delay.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final, Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray

from bridge.errors import ConfigError
from resampling.modes import REALTIME_RATE

TONE_AMPLITUDE: Final = 0.9 * 32767
NOISE_RMS: Final = 0.1 * 32767
FLAT_DB: Final = 0.5
"""Passband tolerance: gains within ±0.5 dB up to the band edge."""
SPURIOUS_DB: Final = -80.0
"""Aliases and images must stay below this (int16 output itself rounds near -92 dB)."""
MAX_BAND_EDGE_HZ: Final = 10_000.0
NARROWBAND_EDGE: Final = 0.85
"""Band edge for narrowband audio, as a share of the Nyquist frequency (3.4 kHz at 8 kHz)."""


class StreamingResampler(Protocol):
    """What the measurements need: int16 in (one stream, fixed rates), int16 mono out."""

    def push(self, pcm: NDArray[np.int16], /) -> NDArray[np.int16]: ...

    def flush(self) -> NDArray[np.int16]: ...


ResamplerFactory: TypeAlias = Callable[[int, int], StreamingResampler]
"""``factory(in_rate, out_rate)`` returns a fresh mono stream."""


@dataclass(frozen=True, slots=True)
class Withheld:
    """Output withheld after each push over a noise run, in ms beyond the frame."""

    mean_ms: float
    max_ms: float
    pushes: int


@dataclass(frozen=True, slots=True)
class Level:
    """A level in dB relative to the input tone. ``resolved`` is False when the output was all
    zeros: ``db`` is then the bound that int16 output can show (the true level is below it)."""

    db: float
    resolved: bool = True


def noise(rate: int, seconds: float, *, seed: int = 0) -> NDArray[np.int16]:
    """Gaussian noise at -20 dBFS RMS, int16 (seeded: every run sees the same samples)."""
    values = np.random.default_rng(seed).normal(0.0, NOISE_RMS, round(rate * seconds))
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def tone(
    rate: int, freq_hz: float, seconds: float, *, amplitude: float = TONE_AMPLITUDE
) -> NDArray[np.int16]:
    """A sine at ``freq_hz``, int16."""
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def frame_bounds(rate: int, frame_ms: int, length: int) -> list[int]:
    """Start offsets of consecutive ``frame_ms`` frames in ``length`` samples at ``rate``, plus
    ``length``. Frames are whole samples; when ``frame_ms`` is not (10 ms at 22.05 kHz is
    220.5) they alternate (220, 221, ...) so that the average stays exact."""
    if frame_ms < 1:
        raise ConfigError(f"frame_ms must be >= 1, not {frame_ms}")
    count = -(-length * 1000 // (rate * frame_ms))
    return [min(k * rate * frame_ms // 1000, length) for k in range(count)] + [length]


def resample_all(
    stream: StreamingResampler, signal: NDArray[np.int16], rate: int, frame_ms: int = 10
) -> NDArray[np.int16]:
    """Push ``signal`` (at ``rate``) in ``frame_ms`` frames, flush, return all the output."""
    bounds = frame_bounds(rate, frame_ms, len(signal))
    parts = [stream.push(signal[start:end]) for start, end in pairwise(bounds)]
    parts.append(stream.flush())
    return np.concatenate(parts)


def withheld_delay(
    factory: ResamplerFactory,
    in_rate: int,
    *,
    out_rate: int = REALTIME_RATE,
    frame_ms: int = 10,
    seconds: float = 20.0,
    seed: int = 0,
) -> Withheld:
    """Mean and maximum output withheld after each push of ``frame_ms`` of noise."""
    signal = noise(in_rate, seconds, seed=seed)
    bounds = frame_bounds(in_rate, frame_ms, len(signal))
    stream = factory(in_rate, out_rate)
    samples_out = 0
    total = worst = 0.0
    pushes = 0
    for start, end in pairwise(bounds):
        samples_out += len(stream.push(signal[start:end]))
        withheld = end * out_rate / in_rate - samples_out
        total += withheld
        worst = max(worst, withheld)
        pushes += 1
    stream.flush()
    to_ms = 1000.0 / out_rate
    return Withheld(mean_ms=total / pushes * to_ms, max_ms=worst * to_ms, pushes=pushes)


def _steady_tone_output(
    factory: ResamplerFactory, in_rate: int, out_rate: int, freq_hz: float, seconds: float
) -> NDArray[np.float64]:
    if not 0 < freq_hz < in_rate / 2:
        raise ConfigError(f"a {freq_hz} Hz tone cannot be sampled at {in_rate} Hz")
    signal = tone(in_rate, freq_hz, seconds)
    out = resample_all(factory(in_rate, out_rate), signal, in_rate)
    margin = round(0.15 * out_rate)  # skip the start-up and flush transients
    if len(out) < 3 * margin:
        raise ConfigError(f"{seconds} s is too short to measure a steady tone")
    steady: NDArray[np.float64] = out[margin:-margin].astype(np.float64)
    return steady


def _fit(steady: NDArray[np.float64], freq_hz: float, out_rate: int) -> NDArray[np.float64]:
    """The least-squares sine at ``freq_hz`` through ``steady`` (starting at the margin)."""
    t = np.arange(len(steady)) / out_rate
    basis = np.stack([np.sin(2 * np.pi * freq_hz * t), np.cos(2 * np.pi * freq_hz * t)], axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, steady, rcond=None)
    fitted: NDArray[np.float64] = basis @ coefficients
    return fitted


def tone_gain_db(
    factory: ResamplerFactory,
    in_rate: int,
    freq_hz: float,
    *,
    out_rate: int = REALTIME_RATE,
    seconds: float = 1.0,
) -> float:
    """Gain in dB of a tone at ``freq_hz`` (which both rates must be able to carry)."""
    if not freq_hz < out_rate / 2:
        raise ConfigError(f"a {freq_hz} Hz tone cannot pass to {out_rate} Hz")
    steady = _steady_tone_output(factory, in_rate, out_rate, freq_hz, seconds)
    fitted = _fit(steady, freq_hz, out_rate)
    amplitude = math.sqrt(2.0 * float(np.mean(fitted**2)))
    return 20.0 * math.log10(max(amplitude, 1e-12) / TONE_AMPLITUDE)


def spurious_level(
    factory: ResamplerFactory,
    in_rate: int,
    freq_hz: float,
    *,
    out_rate: int = REALTIME_RATE,
    seconds: float = 1.0,
) -> Level:
    """Everything but the tone, relative to the tone: the alias of a tone above half the output
    rate, or images, distortion and rounding for a tone below it."""
    steady = _steady_tone_output(factory, in_rate, out_rate, freq_hz, seconds)
    rest = steady - _fit(steady, freq_hz, out_rate) if freq_hz < out_rate / 2 else steady
    tone_rms = TONE_AMPLITUDE / math.sqrt(2.0)
    if not np.any(steady):
        return Level(20.0 * math.log10(0.5 / tone_rms), resolved=False)
    rms = math.sqrt(float(np.mean(rest**2)))
    return Level(20.0 * math.log10(max(rms, 1e-12) / tone_rms))


def push_cost_us(push: Callable[[Any], object], frames: Sequence[Any]) -> float:
    """Mean µs per call of ``push`` over one pass through ``frames`` (collector paused)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for frame in frames:
            push(frame)
        elapsed = time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / len(frames) * 1e6


def compare_push_costs(
    candidates: Mapping[str, tuple[Callable[[Any], object], Sequence[Any]]], *, rounds: int
) -> dict[str, float]:
    """Median µs per push for each candidate, measured in interleaved rounds (the order rotates
    each round) so that load from other processes falls on all of them alike."""
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            push, frames = candidates[name]
            samples[name].append(push_cost_us(push, frames))
    return {name: float(np.median(values)) for name, values in samples.items()}


# -- the quality bar and the choice rule ------------------------------------------------------


def band_edge_hz(in_rate: int, out_rate: int) -> float:
    """Top of the band that must be flat: 10 kHz, or 0.85 × the narrower side's Nyquist
    frequency when that is lower (3.4 kHz at 8 kHz, 6.8 kHz at 16 kHz, 9.37 kHz at 22.05 kHz)."""
    return min(MAX_BAND_EDGE_HZ, NARROWBAND_EDGE * min(in_rate, out_rate) / 2)


def flatness_tones(in_rate: int, out_rate: int) -> list[float]:
    """Tones checked for flatness: every kHz from 1 kHz up to the band edge, and the edge."""
    edge = band_edge_hz(in_rate, out_rate)
    return [*(float(f) for f in range(1000, int(edge), 1000)), edge]


def spurious_tones(in_rate: int, out_rate: int) -> list[float]:
    """Tones checked for aliasing or imaging. Downsampling: tones at 1.25 and 1.67 × the output
    Nyquist frequency that the input can carry (15 and 20 kHz for 24 kHz output); an input
    above twice the output rate can also carry tones that fold back from further up, so 2.5
    and 3.5 × (30 and 42 kHz) and 0.9 × the input's own Nyquist frequency (43.2 kHz at
    96 kHz) are checked as well where they fit. Upsampling: the band-edge tone, whose images
    land nearest the band."""
    if in_rate > out_rate:
        nyquist = out_rate / 2
        candidates = [round(1.25 * nyquist), round(nyquist * 5 / 3)]
        if in_rate > 2 * out_rate:
            candidates += [round(2.5 * nyquist), round(3.5 * nyquist), round(0.9 * in_rate / 2)]
        fitting = [float(f) for f in dict.fromkeys(candidates) if f < in_rate / 2]
        # Just above the output rate (25 kHz in) none fits: midway between the two Nyquists.
        return fitting or [(nyquist + in_rate / 2) / 2]
    return [band_edge_hz(in_rate, out_rate)]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One mode at one rate pair against the bar: worst gain error, worst spurious level, and
    the worst-case withheld delay (10 ms frames)."""

    worst_gain_db: float
    worst_spurious_db: float
    worst_delay_ms: float

    @property
    def passes(self) -> bool:
        return self.worst_gain_db <= FLAT_DB and self.worst_spurious_db < SPURIOUS_DB


def judge(
    factory: ResamplerFactory,
    in_rate: int,
    out_rate: int,
    *,
    delay: Withheld | None = None,
    seconds: float = 20.0,
) -> Verdict:
    """Measure ``factory`` against the bar at one rate pair (reusing ``delay`` if given)."""
    gains = [
        abs(tone_gain_db(factory, in_rate, f, out_rate=out_rate))
        for f in flatness_tones(in_rate, out_rate)
    ]
    spurious = [
        spurious_level(factory, in_rate, f, out_rate=out_rate).db
        for f in spurious_tones(in_rate, out_rate)
    ]
    if delay is None:
        delay = withheld_delay(factory, in_rate, out_rate=out_rate, seconds=seconds)
    return Verdict(max(gains), max(spurious), delay.max_ms)


def choose(verdicts: Iterable[tuple[str, Verdict]]) -> str | None:
    """The name with the least worst-case delay among those that pass the bar (None if none)."""
    passing = [(verdict.worst_delay_ms, name) for name, verdict in verdicts if verdict.passes]
    return min(passing)[1] if passing else None
