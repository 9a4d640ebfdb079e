"""``python -m bridge.bench.resampling_report``: every resampling mode against the SDK's own.

One run measures each libsoxr mode through :class:`resampling.Resampler` and each quality of
``livekit.rtc.AudioResampler`` (soxr inside the SDK, reached over its FFI; push and flush need
no event loop) with the functions of :mod:`bridge.bench.resampling_measure`, and prints:

1. 48 kHz → 24 kHz: µs per 10 ms frame (median of interleaved rounds), gains, alias levels;
2. output withheld beyond the frame, mean/max over a noise run, 10 and 20 ms frames, for 8, 16,
   44.1 and 48 kHz input;
3. the same quality figures at 44.1, 16 and 8 kHz input;
4. the choice rule applied per rate pair (our modes only: ``resampling`` cannot use the SDK),
   next to what :func:`resampling.default_mode` returns: the room rates both ways, and the
   other common rates of recordings (11.025 and 12 kHz, 88.2 to 192 kHz) towards 24 kHz;
5. with ``--scan``: the default's worst-case withheld delay at every 1 kHz from 8 to 192 kHz,
   the worst per band (any whole rate in that range converts).

This module lives in ``bridge`` because it imports ``livekit``; ``resampling`` never does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from bridge.bench.resampling_measure import (
    FLAT_DB,
    SPURIOUS_DB,
    ResamplerFactory,
    Verdict,
    Withheld,
    choose,
    compare_push_costs,
    judge,
    noise,
    resample_all,
    spurious_level,
    tone_gain_db,
    withheld_delay,
)
from resampling import MAX_RATE, MIN_RATE, REALTIME_RATE, VR, Resampler, default_mode
from resampling.modes import ALL_MODES, QUALITIES, Mode

DELAY_RATES = (8_000, 16_000, 44_100, 48_000)
FRAME_MS = (10, 20)
GAIN_TONES_48K = (3_000.0, 8_000.0, 10_000.0, 11_000.0)
ALIAS_TONES = (15_000.0, 20_000.0)
# (input rate, gain tones, spurious tones) for table 3.
OTHER_RATES: tuple[tuple[int, tuple[float, ...], tuple[float, ...]], ...] = (
    (44_100, (3_000.0, 10_000.0), ALIAS_TONES),
    (16_000, (3_000.0, 6_800.0), (6_800.0,)),
    (8_000, (3_000.0, 3_400.0), (3_400.0,)),
)
# Rate pairs the choice rule is applied to: every common rate towards 24 kHz (room rates, then
# the other rates recordings carry), and back to the room rates.
RULE_PAIRS: tuple[tuple[int, int], ...] = (
    *((rate, REALTIME_RATE) for rate in (8_000, 16_000, 22_050, 32_000, 44_100, 48_000)),
    *((REALTIME_RATE, rate) for rate in (8_000, 16_000, 48_000)),
    *((rate, REALTIME_RATE) for rate in (11_025, 12_000, 88_200, 96_000, 176_400, 192_000)),
)


class RtcStream:
    """``rtc.AudioResampler`` behind the ``StreamingResampler`` protocol of
    :mod:`bridge.bench.resampling_measure`."""

    def __init__(self, in_rate: int, out_rate: int, quality: rtc.AudioResamplerQuality) -> None:
        self._resampler = rtc.AudioResampler(in_rate, out_rate, num_channels=1, quality=quality)

    def push(self, pcm: NDArray[np.int16], /) -> NDArray[np.int16]:
        return _samples(self._resampler.push(bytearray(pcm.tobytes())))

    def flush(self) -> NDArray[np.int16]:
        return _samples(self._resampler.flush())


def _samples(frames: list[rtc.AudioFrame]) -> NDArray[np.int16]:
    if not frames:
        return np.empty(0, np.int16)
    return np.concatenate([np.frombuffer(frame.data, dtype=np.int16) for frame in frames])


def ours(mode: Mode) -> ResamplerFactory:
    return lambda in_rate, out_rate: Resampler(in_rate, out_rate, quality=mode)


def sdk(quality: rtc.AudioResamplerQuality) -> ResamplerFactory:
    return lambda in_rate, out_rate: RtcStream(in_rate, out_rate, quality)


def candidates() -> dict[str, ResamplerFactory]:
    found: dict[str, ResamplerFactory] = {f"soxr {mode.name}": ours(mode) for mode in ALL_MODES}
    for quality in rtc.AudioResamplerQuality:
        found[f"rtc {quality.name}"] = sdk(quality)
    return found


def vr_ignores_quality(seconds: float = 1.0) -> bool:
    """True if ``vr=True`` output is bit-identical for every quality (so one VR row suffices)."""
    for rate in DELAY_RATES:
        signal = noise(rate, seconds, seed=7)
        outputs = [
            resample_all(
                Resampler(rate, REALTIME_RATE, quality=Mode(quality, vr=True)),
                signal,
                rate,
            )
            for quality in QUALITIES
        ]
        if not all(np.array_equal(outputs[0], out) for out in outputs[1:]):
            return False
    return True


def vr_scan(*, seconds: float, step: int = 1_000) -> dict[str, float]:
    """Worst-case withheld ms of the default (VR) towards 24 kHz at every ``step`` Hz from 8 to
    192 kHz: what a rate between the measured ones costs (``--scan``)."""
    return {
        str(rate): withheld_delay(ours(VR), rate, seconds=seconds).max_ms
        for rate in range(MIN_RATE, MAX_RATE + 1, step)
    }


def push_costs(
    factories: dict[str, ResamplerFactory], *, frames: int, rounds: int
) -> dict[str, float]:
    """µs per 10 ms 48 kHz mono frame: ours push int16 arrays, the SDK's push bytearrays."""
    signal = noise(48_000, frames / 100, seed=3)
    arrays = [signal[i : i + 480] for i in range(0, len(signal), 480)]
    buffers = [bytearray(frame.tobytes()) for frame in arrays]
    benches: dict[str, tuple[Callable[[Any], object], Sequence[Any]]] = {}
    for name in factories:
        if name.startswith("rtc "):
            quality = rtc.AudioResamplerQuality[name.removeprefix("rtc ")]
            resampler = rtc.AudioResampler(48_000, REALTIME_RATE, quality=quality)
            benches[name] = (resampler.push, buffers)
        else:
            stream = factories[name](48_000, REALTIME_RATE)
            benches[name] = (stream.push, arrays)
    for push, inputs in benches.values():  # warm up: first calls allocate
        for frame in inputs[:50]:
            push(frame)
    return compare_push_costs(benches, rounds=rounds)


def measure(*, seconds: float, frames: int, rounds: int) -> dict[str, Any]:
    factories = candidates()
    report: dict[str, Any] = {
        "settings": {"noise_seconds": seconds, "timing_frames": frames, "timing_rounds": rounds},
        "vr_ignores_quality": vr_ignores_quality(),
        "us_per_frame": push_costs(factories, frames=frames, rounds=rounds),
        "gain_db": {},
        "spurious_db": {},
        "withheld_ms": {},
        "rule": {},
    }
    for name, factory in factories.items():
        gains: dict[str, float] = {}
        levels: dict[str, dict[str, Any]] = {}
        for rate, gain_tones, spurious_tones in (
            (48_000, GAIN_TONES_48K, ALIAS_TONES),
            *OTHER_RATES,
        ):
            for freq in gain_tones:
                gains[f"{rate}/{freq:g}"] = tone_gain_db(factory, rate, freq)
            for freq in spurious_tones:
                levels[f"{rate}/{freq:g}"] = asdict(spurious_level(factory, rate, freq))
        report["gain_db"][name] = gains
        report["spurious_db"][name] = levels
        delays: dict[str, dict[str, Any]] = {}
        for rate in DELAY_RATES:
            for frame_ms in FRAME_MS:
                result = withheld_delay(factory, rate, frame_ms=frame_ms, seconds=seconds)
                delays[f"{rate}/{frame_ms}"] = asdict(result)
        report["withheld_ms"][name] = delays
    for in_rate, out_rate in RULE_PAIRS:
        verdicts: dict[str, Verdict] = {}
        for mode in ALL_MODES:
            name = f"soxr {mode.name}"
            known = report["withheld_ms"][name].get(f"{in_rate}/10")
            delay = Withheld(**known) if out_rate == REALTIME_RATE and known else None
            verdicts[name] = judge(ours(mode), in_rate, out_rate, delay=delay, seconds=seconds)
        chosen = choose(verdicts.items())
        report["rule"][f"{in_rate}->{out_rate}"] = {
            "verdicts": {name: asdict(v) | {"passes": v.passes} for name, v in verdicts.items()},
            "chosen": chosen,
            "default_mode": f"soxr {default_mode(in_rate, out_rate).name}",
        }
    return report


# -- printing ---------------------------------------------------------------------------------


def _level(level: dict[str, Any]) -> str:
    return f"{level['db']:.1f}" if level["resolved"] else f"<{level['db']:.0f}"


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [title, ""]
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    names = list(report["us_per_frame"])
    default_name = f"soxr {default_mode(48_000).name}"
    out: list[str] = []

    def mark(name: str) -> str:
        return f"{name} *" if name == default_name else name

    rows = []
    for name in names:
        gains = report["gain_db"][name]
        levels = report["spurious_db"][name]
        rows.append(
            [
                mark(name),
                f"{report['us_per_frame'][name]:.2f}",
                *(f"{gains[f'48000/{f:g}']:+.2f}" for f in GAIN_TONES_48K),
                *(_level(levels[f"48000/{f:g}"]) for f in ALIAS_TONES),
            ]
        )
    out.append(
        _table(
            "1. 48 kHz -> 24 kHz mono: cost per 10 ms frame (median), gain and alias (dB)",
            ["mode", "us/frame", "3k", "8k", "10k", "11k", "alias 15k", "alias 20k"],
            rows,
        )
    )
    rows = []
    for name in names:
        delays = report["withheld_ms"][name]
        rows.append(
            [mark(name)]
            + [
                f"{delays[f'{rate}/{ms}']['mean_ms']:.1f}/{delays[f'{rate}/{ms}']['max_ms']:.1f}"
                for rate in DELAY_RATES
                for ms in FRAME_MS
            ]
        )
    seconds = report["settings"]["noise_seconds"]
    out.append(
        _table(
            f"2. Output withheld beyond the frame, ms mean/max after every push of {seconds:g} s "
            "of noise",
            ["mode", *(f"{rate / 1000:g}k {ms}ms" for rate in DELAY_RATES for ms in FRAME_MS)],
            rows,
        )
    )
    header = ["mode"]
    for rate, gain_tones, spurious_tones in OTHER_RATES:
        labels = [f"g{f / 1000:g}k" for f in gain_tones]
        labels += [
            f"{'a' if f > REALTIME_RATE / 2 else 'img'}{f / 1000:g}k" for f in spurious_tones
        ]
        header += [f"{rate / 1000:g}k {labels[0]}", *labels[1:]]
    rows = []
    for name in names:
        gains = report["gain_db"][name]
        levels = report["spurious_db"][name]
        row = [mark(name)]
        for rate, gain_tones, spurious_tones in OTHER_RATES:
            row += [f"{gains[f'{rate}/{f:g}']:+.2f}" for f in gain_tones]
            row += [_level(levels[f"{rate}/{f:g}"]) for f in spurious_tones]
        rows.append(row)
    out.append(
        _table(
            "3. Other input rates -> 24 kHz, dB: g = gain, a = alias,"
            " img = images (all but the tone)",
            header,
            rows,
        )
    )
    modes = [f"soxr {mode.name}" for mode in ALL_MODES]
    rows = []
    for pair, rule in report["rule"].items():
        cells = []
        for name in modes:
            verdict = rule["verdicts"][name]
            flags = f"F{verdict['worst_gain_db']:.1f}" if verdict["worst_gain_db"] > FLAT_DB else ""
            flags += "A" if verdict["worst_spurious_db"] >= SPURIOUS_DB else ""
            cells.append(f"{verdict['worst_delay_ms']:.1f} {flags or 'ok'}")
        agrees = "" if rule["chosen"] == rule["default_mode"] else "  MISMATCH"
        rows.append([pair, *cells, str(rule["chosen"]), rule["default_mode"] + agrees])
    out.append(
        _table(
            "4. Choice rule per rate pair: worst-case withheld ms (10 ms frames), then ok = flat"
            " within 0.5 dB to the band edge and alias/images < -80 dB; Fx = off by x dB somewhere"
            " in the band; A = alias/images at -80 dB or more",
            ["pair", *(name.removeprefix("soxr ") for name in modes), "rule picks", "default"],
            rows,
        )
    )
    scan = report.get("vr_scan")
    if scan:
        bands = ((MIN_RATE, REALTIME_RATE), (REALTIME_RATE, 48_000), (48_000, MAX_RATE + 1))
        rows = []
        for low, high in bands:
            inside = {int(rate): ms for rate, ms in scan.items() if low <= int(rate) < high}
            if not inside:
                continue
            worst = max(inside, key=lambda rate: inside[rate])
            rows.append(
                [f"{low / 1000:g}-{min(high, MAX_RATE) / 1000:g} kHz", str(len(inside)),
                 f"{inside[worst]:.1f}", f"{worst / 1000:g} kHz"]
            )  # fmt: skip
        out.append(
            _table(
                "5. VR towards 24 kHz at every 1 kHz step: worst-case withheld ms (10 ms frames)",
                ["input rates", "rates", "worst ms", "at"],
                rows,
            )
        )
    costs = report["us_per_frame"]
    sdk_names = [name for name in names if name.startswith("rtc ")]
    fastest_sdk = min(sdk_names, key=lambda name: costs[name])
    out.append(
        "\n".join(
            [
                f"* = default at 48 kHz ({default_name}). vr=True output bit-identical for every"
                f" quality: {'yes' if report['vr_ignores_quality'] else 'NO'} (one VR row).",
                f"Default {costs[default_name]:.2f} us/frame vs fastest rtc.AudioResampler"
                f" ({fastest_sdk}) {costs[fastest_sdk]:.2f} us/frame, same run; medians of"
                f" {report['settings']['timing_rounds']} interleaved rounds of"
                f" {report['settings']['timing_frames']} frames.",
                "Levels shown as <N: the output was all zeros (below int16 resolution).",
            ]
        )
    )
    return "\n\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.bench.resampling_report",
        description="Measure soxr modes and livekit.rtc.AudioResampler: cost, delay, quality.",
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="noise run per delay figure (default 20)"
    )
    parser.add_argument(
        "--frames", type=int, default=2000, help="10 ms frames per timing round (default 2000)"
    )
    parser.add_argument("--rounds", type=int, default=15, help="timing rounds (default 15)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--scan",
        action="store_true",
        help="also measure VR at every 1 kHz from 8 to 192 kHz (table 5; about 30 s more)",
    )
    args = parser.parse_args(argv)
    report = measure(seconds=args.seconds, frames=args.frames, rounds=args.rounds)
    if args.scan:
        report["vr_scan"] = vr_scan(seconds=min(args.seconds, 2.0))
    print(json.dumps(report, indent=2) if args.json else render(report))
    mismatched = [
        pair for pair, rule in report["rule"].items() if rule["chosen"] != rule["default_mode"]
    ]
    if mismatched:
        print(
            f"default_mode() disagrees with the rule for {', '.join(mismatched)}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
