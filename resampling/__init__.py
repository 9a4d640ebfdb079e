"""Streaming sample-rate conversion to and from 24 kHz mono PCM16 (numpy + soxr, no asyncio).

Pure audio plumbing: nothing here imports ``livekit`` or ``asyncio``, or reads the environment.

- :class:`Resampler` (``resampler``): int16 mono/stereo at a room rate in, int16 mono out,
  exact sample accounting, a click-free :meth:`~Resampler.handover` to a new input format;
- :class:`Framer` (``framing``): exact fixed-size chunks (20 ms appends) with the partial chunk
  on demand;
- :class:`Mode`, :func:`default_mode` (``modes``): libsoxr configurations and the measured
  default per rate;
- ``pcm``: input validation and channel downmix; ``measure``: the measurements behind the
  defaults (``python -m bridge.bench.resampling_report`` prints them).
"""

from resampling.framing import Framer
from resampling.modes import (
    HQ,
    LQ,
    MQ,
    QQ,
    REALTIME_RATE,
    SUPPORTED_RATES,
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
    "MQ",
    "QQ",
    "REALTIME_RATE",
    "SUPPORTED_RATES",
    "VHQ",
    "VR",
    "Framer",
    "Mode",
    "Resampler",
    "default_mode",
]
