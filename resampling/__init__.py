"""Streaming sample-rate conversion to and from 24 kHz mono PCM16 (numpy + soxr, no asyncio).

Pure audio plumbing: nothing here imports ``livekit`` or ``asyncio``, or reads the environment.

- :class:`Resampler` (``resampler``): int16 mono/stereo at a room rate in, int16 mono out,
  exact sample accounting, a click-free :meth:`~Resampler.handover` to a new input format;
- :class:`Framer` (``framing``): exact fixed-size chunks (20 ms appends) with the partial chunk
  on demand;
- :class:`Mode`, :func:`default_mode` (``modes``): libsoxr configurations and the measured
  default per rate; any whole rate from :data:`MIN_RATE` (8 kHz) to :data:`MAX_RATE` (192 kHz);
- ``pcm``: input validation and channel downmix; ``measure``: the measurements behind the
  defaults (``python -m bridge.bench.resampling_report`` prints them).
"""

from resampling.framing import Framer
from resampling.modes import (
    COMMON_RATES,
    HQ,
    LQ,
    MAX_RATE,
    MIN_RATE,
    MQ,
    QQ,
    REALTIME_RATE,
    VHQ,
    VR,
    Mode,
    default_mode,
)
from resampling.resampler import DEFAULT_FADE_MS, Resampler

__all__ = [
    "DEFAULT_FADE_MS",
    "HQ",
    "LQ",
    "MAX_RATE",
    "MIN_RATE",
    "MQ",
    "QQ",
    "REALTIME_RATE",
    "COMMON_RATES",
    "VHQ",
    "VR",
    "Framer",
    "Mode",
    "Resampler",
    "default_mode",
]
