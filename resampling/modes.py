"""Resampling modes (a soxr quality plus the variable-rate flag) and the default per rate.

A :class:`Mode` names one libsoxr configuration. The five fixed-rate qualities (``QQ`` …
``VHQ``) process audio in internal blocks and so hold output back in bursts; ``vr=True`` selects
libsoxr's variable-rate engine, which holds back a constant 240 input samples and ignores the
quality setting (its output is bit-identical for every quality; the report checks this on every
run). :func:`default_mode` is the choice the report's table justifies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from types import MappingProxyType
from typing import Final, Literal

from resampling.errors import InvalidParameter, UnsupportedFormat

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
QUALITIES: Final[tuple[Quality, ...]] = ("QQ", "LQ", "MQ", "HQ", "VHQ")

REALTIME_RATE: Final = 24_000
"""The Realtime API's audio rate (PCM16, mono)."""

MIN_RATE: Final = 8_000
MAX_RATE: Final = 192_000
"""Any whole rate from :data:`MIN_RATE` to :data:`MAX_RATE` Hz converts, both ways: every rate a
room delivers, and every rate a WAV file is written at in practice. Anything else is refused."""

COMMON_RATES: Final[tuple[int, ...]] = (
    *(8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000),
    *(88_200, 96_000, 176_400, 192_000),
)
"""The common rates, each measured on its own (README "Resampling", table 4): what rooms and
phones deliver (8 to 48 kHz) and what recordings carry (11.025 and 12 kHz, 88.2 to 192 kHz)."""

MAX_CHANNELS: Final = 8
"""Interleaved input may carry up to this many channels; they are averaged to mono."""


@dataclass(frozen=True, slots=True)
class Mode:
    """One libsoxr configuration: a quality recipe and whether to use the variable-rate engine.

    ``quality`` is libsoxr's recipe name. With ``vr=True`` libsoxr ignores it (measured: outputs
    are bit-identical for all five), so :data:`VR` fixes it to ``"HQ"`` for a stable identity.
    """

    quality: Quality
    _: KW_ONLY
    vr: bool = False

    def __post_init__(self) -> None:
        if self.quality not in QUALITIES:
            raise InvalidParameter(
                f"resampling quality must be one of {', '.join(QUALITIES)}, not {self.quality!r}"
            )

    @property
    def name(self) -> str:
        """Short label used in reports and logs: ``"HQ"``, or ``"VR"`` for the vr engine."""
        return "VR" if self.vr else self.quality


QQ: Final = Mode("QQ")
LQ: Final = Mode("LQ")
MQ: Final = Mode("MQ")
HQ: Final = Mode("HQ")
VHQ: Final = Mode("VHQ")
VR: Final = Mode("HQ", vr=True)

FIXED_MODES: Final[tuple[Mode, ...]] = (QQ, LQ, MQ, HQ, VHQ)
ALL_MODES: Final[tuple[Mode, ...]] = (*FIXED_MODES, VR)

# The rule (from the issue): the least worst-case withheld delay among the modes whose passband
# is flat within ±0.5 dB up to the band edge (10 kHz, or 0.85 × the narrower side's Nyquist
# frequency: 3.4 kHz at 8 kHz, 6.8 kHz at 16 kHz, 9.37 kHz at 22.05 kHz) and whose aliases and
# images stay below -80 dB. Figures from `python -m bridge.bench.resampling_report` (README
# "Resampling", table 4): python-soxr 1.1.0, 10 ms frames, worst case over a 20 s noise run.
# QQ withholds almost nothing but has no anti-alias filter (a 15 kHz tone comes back at 0 dB
# from 48 kHz), so it fails at every rate; LQ's passband is too narrow at every rate (-5.4 to
# -7.8 dB at the band edge); MQ, HQ and VHQ pass but release output in blocks.
_DEFAULT_BY_INPUT_RATE: Final[Mapping[int, Mode]] = MappingProxyType(
    {
        # VR 30.0 ms constant; MQ/HQ/VHQ max 75.3/73.2/152.5 ms; LQ 40.0 ms, off by 7.8 dB.
        8_000: VR,
        # VR 15.0 ms; MQ/HQ/VHQ max 37.7/36.6/76.2 ms; LQ 20.0 ms, off by 7.8 dB.
        16_000: VR,
        # VR 10.9 ms; MQ/HQ/VHQ max 42.7/41.9/40.4 ms; LQ 0.9 ms but off by 7.8 dB.
        22_050: VR,
        # VR 7.5 ms; MQ/HQ/VHQ max 39.4/38.6/37.1 ms; LQ 9.8 ms, off by 5.4 dB.
        32_000: VR,
        # VR 5.5 ms; MQ/HQ/VHQ max 39.0/38.3/37.0 ms; LQ 20.0 ms, off by 5.9 dB.
        44_100: VR,
        # VR 5.0 ms, flat to 11 kHz, 15/20 kHz below int16 resolution; MQ/HQ/VHQ max
        # 39.3/38.3/37.1 ms; LQ 20.4 ms, -5.4 dB at 10 kHz.
        48_000: VR,
        # Recordings. VR 21.8 ms; MQ/HQ/VHQ max 85.4/83.9/80.7 ms; LQ 1.9 ms, off by 7.8 dB.
        11_025: VR,
        # VR 20.0 ms; MQ/HQ/VHQ max 78.7/76.7/74.2 ms; LQ 40.8 ms, off by 7.9 dB.
        12_000: VR,
        # VR 6.8 ms; MQ/HQ/VHQ max 43.0/42.2/40.8 ms; LQ 10.7 ms, off by 5.4 dB. Above 48 kHz
        # the input carries tones up to its own Nyquist frequency: 30 kHz, 42 kHz and 0.9 x
        # Nyquist are checked for aliasing as well; with VR all stay below int16 resolution.
        88_200: VR,
        # VR 6.2 ms; MQ/HQ/VHQ max 39.0/38.3/37.0 ms; LQ 20.5 ms, off by 5.4 dB.
        96_000: VR,
        # VR 7.5 ms; MQ/HQ/VHQ max 42.4/42.1/40.7 ms; LQ 10.7 ms, off by 5.3 dB.
        176_400: VR,
        # VR 6.9 ms; MQ/HQ/VHQ max 39.2/38.5/37.1 ms; LQ 20.6 ms, off by 5.3 dB.
        192_000: VR,
    }
)
# Any other rate in range: VR, the rule's pick at every measured rate and at spot checks of 50
# and 97 kHz (MQ/HQ/VHQ 35-39 ms there). Its worst case at every 1 kHz from 8 to 192 kHz
# (the report's --scan): 30.0 ms below 24 kHz (at 8 kHz), 9.6 ms from 24 to 48 kHz, 13.6 ms
# above (at 97 kHz).
_DEFAULT_OTHER_RATE: Final = VR

# The way back (24 kHz model audio to a room rate), same rule: VR withholds 10.0 ms towards 48
# and 16 kHz and 25.0 ms towards 8 kHz, against MQ/HQ/VHQ's 36.6-152.5 ms worst cases; LQ
# (20.4/20.0/40.0 ms) is off by 5.4-7.8 dB.
_DEFAULT_FROM_REALTIME: Final = VR


def check_rate(rate: int) -> int:
    """``rate`` if the resampler handles it (a whole number of Hz from :data:`MIN_RATE` to
    :data:`MAX_RATE`), else :class:`~resampling.errors.UnsupportedFormat`."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedFormat("sample rate", rate, f"{MIN_RATE} to {MAX_RATE} Hz")
    return rate


def default_mode(in_rate: int, out_rate: int = REALTIME_RATE) -> Mode:
    """The mode the report's table justifies for ``in_rate`` → ``out_rate`` (see the table above).

    Every pair gets :data:`VR` today: at each measured rate it has the least worst-case delay
    of the modes that meet the quality bar (at 48 kHz: 5.0 ms constant, flat to 11 kHz, 15 and
    20 kHz tones below int16 resolution), and rates between measured ones get it too. The table
    is per rate so that a different measurement can change one rate without touching the
    others. Same-rate pairs never use soxr.
    """
    check_rate(in_rate)
    check_rate(out_rate)
    if out_rate == REALTIME_RATE and in_rate != REALTIME_RATE:
        return _DEFAULT_BY_INPUT_RATE.get(in_rate, _DEFAULT_OTHER_RATE)
    if in_rate == REALTIME_RATE:
        return _DEFAULT_FROM_REALTIME
    return _DEFAULT_OTHER_RATE
