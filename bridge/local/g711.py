"""G.711 µ-law, and the telephone leg of a call as LiveKit's SIP service carries it.

A phone call reaches a LiveKit room through ``livekit-sip``: the caller's RTP is G.711 (PCMU,
8 kHz, 8 bits a sample); the service decodes it, resamples 8 → 48 kHz and publishes it as a
48 kHz mono Opus track; the other way, it decodes the room's Opus at 48 kHz, resamples to
8 kHz and encodes µ-law. :func:`phone_to_room` and :func:`room_to_phone` are those two legs
(the µ-law pass is exact G.711, the resampler soxr as in the service), so a stand-in caller
can say and hear exactly what a phone would.

The codec is ITU-T G.711 µ-law (bias 0x84, clip 32635, bits inverted on the wire), written
with numpy: :func:`ulaw_encode` / :func:`ulaw_decode` (``audioop`` is deprecated since 3.11
and gone in 3.13).
"""

from __future__ import annotations

import numpy as np
import soxr
from numpy.typing import NDArray

PHONE_RATE = 8_000
ROOM_RATE = 48_000  # what livekit-sip publishes and mixes at
_BIAS = 0x84
_CLIP14 = 8_159  # 32635 >> 2


def ulaw_encode(samples: NDArray[np.int16]) -> NDArray[np.uint8]:
    """16-bit linear PCM to G.711 µ-law bytes (as sent in PCMU RTP payloads).

    On the 14-bit value (``x >> 2``), as the Sun reference code CPython's ``audioop`` used:
    identical output for every input.
    """
    v = samples.astype(np.int32) >> 2
    negative = v < 0
    magnitude = np.minimum(np.where(negative, -v, v), _CLIP14) + (_BIAS >> 2)  # 33 .. 8192
    segment = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 8)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def ulaw_decode(codes: NDArray[np.uint8]) -> NDArray[np.int16]:
    """G.711 µ-law bytes to 16-bit linear PCM."""
    c = (~codes.astype(np.int32)) & 0xFF
    exponent = (c >> 4) & 0x07
    magnitude = (((c & 0x0F) << 3) + _BIAS) << exponent
    linear = magnitude - _BIAS
    decoded: NDArray[np.int16] = np.where(c & 0x80, -linear, linear).astype(np.int16)
    return decoded


def resample(samples: NDArray[np.int16], rate: int, to: int) -> NDArray[np.int16]:
    """One-shot soxr resampling of mono int16 (HQ: no delay left in a one-shot call)."""
    if rate == to:
        return samples.copy()
    y: NDArray[np.float32] = soxr.resample(samples.astype(np.float32), rate, to, "HQ")
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def phone_to_room(said: NDArray[np.int16], rate: int) -> NDArray[np.int16]:
    """What the SIP service publishes (48 kHz) when a phone says ``said`` (mono at ``rate``).

    The phone samples at 8 kHz and sends µ-law; the service decodes and resamples to 48 kHz.
    The result is aligned with ``said``: sample ``i / rate`` s in, ``i / rate`` s out.
    """
    wire = ulaw_encode(resample(said, rate, PHONE_RATE))
    return resample(ulaw_decode(wire), PHONE_RATE, ROOM_RATE)


def room_to_phone(heard: NDArray[np.int16], rate: int) -> NDArray[np.int16]:
    """What a phone plays (8 kHz) when the SIP service receives ``heard`` from the room."""
    return ulaw_decode(ulaw_encode(resample(heard, rate, PHONE_RATE)))
