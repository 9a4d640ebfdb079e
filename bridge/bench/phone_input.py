"""``python -m bridge.bench.phone_input``: at which rate to read a phone caller's track.

LiveKit's SIP service publishes a phone caller as a 48 kHz mono Opus track whose content is
G.711: 8 kHz audio, nothing above 4 kHz. The bridge reads a track at ``CallOptions.stream_rate``
(the SDK decodes Opus at 48 kHz and resamples to that rate) and turns it into 24 kHz with
:class:`resampling.Resampler` (the vr engine, which holds a constant 240 input samples). Reading
at 8 or 16 kHz moves fewer samples, but the resampler then holds 30 or 15 ms instead of 5.

For each read rate (8, 16, 48 kHz) this runs the demo recording through the telephone leg
(:func:`bridge.local.g711.phone_to_room`) into a real ``rtc`` track (``AudioSource`` →
``LocalAudioTrack`` → ``AudioStream``, no server: the SDK's decode-side resampling and FFI are
the real ones) and prints:

- the content above 4.2 kHz in what is read at 48 kHz (what a lower rate could drop);
- from one run reading the track at all three rates at once (the same frames, arriving
  together): the SDK's own lag at each rate (the content read, against the 48 kHz read
  resampled offline: a stream's first frame may be silence, whatever its rate), what the
  bridge's resampler withholds after each 10 ms frame (mean and max), and how the 24 kHz the
  session gets differs from what reading at 48 kHz gives (aligned; the energy of the
  difference below the signal, in all, below 3.4 kHz and within 3.4-4 kHz, the top of the
  G.711 band);
- from runs reading one rate each: the process's CPU per 10 ms frame for reading and
  resampling, beyond the source alone (median of ``--rounds`` rounds, the rates interleaved
  and rotated each round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from bridge.local.g711 import ROOM_RATE, phone_to_room, resample
from bridge.local.wavfile import demo_recording, read_wav
from resampling.resampler import Resampler

RATES = (8_000, 16_000, 48_000)
FRAME = ROOM_RATE // 100


@dataclass(slots=True)
class Reading:
    """One read of the phone signal at ``rate``: frames as delivered, and after the bridge's
    resampler (24 kHz)."""

    rate: int
    read: list[NDArray[np.int16]]
    out: list[NDArray[np.int16]]
    withheld_ms: list[float]

    @staticmethod
    def joined(parts: list[NDArray[np.int16]]) -> NDArray[np.int16]:
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)


@dataclass(frozen=True, slots=True)
class RateFigures:
    rate: int
    sdk_lag_ms: float  # behind the 48 kHz read of the same frames
    withheld_mean_ms: float
    withheld_max_ms: float
    cpu_us_per_frame: float  # beyond the source alone
    differs_from_48k_db: float  # energy of (out - out read at 48 kHz) against it, dB
    differs_below_3k4_db: float  # the same within 0-3.4 kHz
    differs_3k4_to_4k_db: float  # ... and within 3.4-4 kHz, the top of the G.711 band


def phone_signal(seconds: float) -> NDArray[np.int16]:
    """The demo recording as the SIP service publishes a phone saying it (48 kHz)."""
    wav = read_wav(demo_recording())
    signal = phone_to_room(wav.mono(), wav.rate)
    repeats = int(np.ceil(seconds * ROOM_RATE / signal.size))
    return np.tile(signal, repeats)[: int(seconds * ROOM_RATE)]


async def read_at(rates: Sequence[int], signal: NDArray[np.int16]) -> tuple[list[Reading], float]:
    """Play ``signal`` into one track in real time; read it at each of ``rates`` at once
    (none: the source alone). Returns the readings and the process's CPU per 10 ms frame."""
    source = rtc.AudioSource(ROOM_RATE, 1, queue_size_ms=50)
    track = rtc.LocalAudioTrack.create_audio_track("phone", source)
    readings = [Reading(rate, [], [], []) for rate in rates]
    streams = [
        rtc.AudioStream(track, sample_rate=rate, num_channels=1, frame_size_ms=10) for rate in rates
    ]

    async def read(stream: rtc.AudioStream, reading: Reading) -> None:
        resampler = Resampler(reading.rate, 24_000, 1)
        async for event in stream:
            frame = np.frombuffer(event.frame.data, dtype=np.int16)
            reading.read.append(frame.copy())
            reading.out.append(resampler.push(frame))
            reading.withheld_ms.append(resampler.withheld_ms)

    loop = asyncio.get_running_loop()
    readers = [loop.create_task(read(s, r)) for s, r in zip(streams, readings, strict=True)]
    started = time.process_time()
    frames = 0
    for i in range(0, signal.size - FRAME + 1, FRAME):
        chunk = signal[i : i + FRAME]
        await source.capture_frame(rtc.AudioFrame(chunk.tobytes(), ROOM_RATE, 1, FRAME))
        frames += 1
    await source.wait_for_playout()
    cpu = time.process_time() - started
    for reader in readers:
        reader.cancel()
    for stream in streams:
        await stream.aclose()
    await source.aclose()
    return readings, cpu / frames


def lag_ms(reference: NDArray[np.int16], read: NDArray[np.int16], rate: int) -> float:
    """How far ``read`` lags ``reference`` (same content, same rate), in ms."""
    n = min(reference.size, read.size, rate * 4)
    corr = np.correlate(read[:n].astype(np.float64), reference[: n // 2].astype(np.float64))
    return float(np.argmax(corr)) * 1000 / rate


def above_4k_db(samples: NDArray[np.int16]) -> float:
    """Energy above 4 kHz against the total, dB (48 kHz input)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / ROOM_RATE)
    return float(10 * np.log10(spectrum[freqs > 4_200].sum() / spectrum.sum() + 1e-30))


def _differs(out: NDArray[np.int16], reference: NDArray[np.int16]) -> tuple[float, ...]:
    """The difference of two 24 kHz reads of the same content (aligned first), dB below the
    reference: in all, within 0-3.4 kHz, within 3.4-4 kHz."""
    shift = round(lag_ms(reference, out, 24_000) * 24)
    n = min(reference.size, out.size - shift) - 2_400
    a = out[shift : shift + n].astype(np.float64)
    b = reference[:n].astype(np.float64)
    diff = np.abs(np.fft.rfft(a - b)) ** 2
    ref = np.abs(np.fft.rfft(b)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / 24_000)
    bands = (freqs >= 0, freqs < 3_400, (freqs >= 3_400) & (freqs < 4_000))
    return tuple(
        round(float(10 * np.log10(diff[m].sum() / (ref[m].sum() + 1e-30) + 1e-30)), 1)
        for m in bands
    )


async def measure(seconds: float, rounds: int) -> dict[str, Any]:
    signal = phone_signal(seconds)
    # Content: one track read at every rate at once (the same frames, the same run).
    readings, _ = await read_at(RATES, signal)
    together = {r.rate: r for r in readings}
    reference = Reading.joined(together[ROOM_RATE].out)
    # Cost: one rate per run, rates interleaved and rotated, against the source alone (0).
    cpu: dict[int, list[float]] = {r: [] for r in (0, *RATES)}
    order = [0, *RATES]
    for round_ in range(rounds):
        for rate in order[round_ % len(order) :] + order[: round_ % len(order)]:
            _, per_frame = await read_at([rate] if rate else [], signal)
            cpu[rate].append(per_frame)
    base = statistics.median(cpu[0])
    figures = []
    for rate in RATES:
        reading = together[rate]
        offline = resample(Reading.joined(together[ROOM_RATE].read), ROOM_RATE, rate)
        total, low, top = _differs(Reading.joined(reading.out), reference)
        figures.append(
            RateFigures(
                rate=rate,
                sdk_lag_ms=round(lag_ms(offline, Reading.joined(reading.read), rate), 2),
                withheld_mean_ms=round(statistics.fmean(reading.withheld_ms), 1),
                withheld_max_ms=round(max(reading.withheld_ms), 1),
                cpu_us_per_frame=round((statistics.median(cpu[rate]) - base) * 1e6, 1),
                differs_from_48k_db=total,
                differs_below_3k4_db=low,
                differs_3k4_to_4k_db=top,
            )
        )
    return {
        "seconds": seconds,
        "rounds": rounds,
        "above_4khz_db": round(above_4k_db(Reading.joined(together[ROOM_RATE].read)), 1),
        "source_only_us_per_frame": round(base * 1e6, 1),
        "rates": [asdict(f) for f in figures],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.bench.phone_input", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="signal per run (default 6)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.seconds, args.rounds))
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"phone signal: {args.seconds:.0f} s x {args.rounds} rounds; content above 4.2 kHz in"
        f" the 48 kHz read: {result['above_4khz_db']} dB of the total"
    )
    print(f"source alone: {result['source_only_us_per_frame']} us CPU per 10 ms frame\n")
    print(
        "read at   SDK lag   withheld mean/max   CPU beyond source   differs from the 48 kHz read"
    )
    print("                                                               all / <3.4k / 3.4-4k dB")
    for f in result["rates"]:
        print(
            f"{f['rate'] // 1000:>4} kHz  {f['sdk_lag_ms']:>6.2f} ms   "
            f"{f['withheld_mean_ms']:>6.1f} / {f['withheld_max_ms']:<6.1f} ms"
            f"   {f['cpu_us_per_frame']:>8.1f} us/frame   {f['differs_from_48k_db']:>6.1f} /"
            f" {f['differs_below_3k4_db']:>6.1f} / {f['differs_3k4_to_4k_db']:>6.1f}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
