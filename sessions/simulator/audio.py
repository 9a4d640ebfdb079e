"""Audio on the wire: the three Realtime formats, G.711 tables, levels and synthetic signals.

The Realtime API carries audio as base64 inside JSON in one of three formats:

- ``audio/pcm``: signed 16-bit little-endian PCM, mono, 24 kHz (48 bytes per ms);
- ``audio/pcmu`` and ``audio/pcma``: G.711 mu-law / A-law, mono, 8 kHz (8 bytes per ms).

Everything here is pure numpy on bytes; nothing knows about sockets or time.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

PCM_RATE: Final = 24_000
"""Sample rate of ``audio/pcm``: the only rate the API speaks."""

FULL_SCALE: Final = 32_768.0


class AudioFormat(StrEnum):
    """The ``type`` of a GA audio format object."""

    PCM = "audio/pcm"
    PCMU = "audio/pcmu"
    PCMA = "audio/pcma"

    @property
    def sample_rate(self) -> int:
        """Samples per second."""
        return PCM_RATE if self is AudioFormat.PCM else 8_000

    @property
    def sample_width(self) -> int:
        """Bytes per sample."""
        return 2 if self is AudioFormat.PCM else 1

    @property
    def bytes_per_ms(self) -> int:
        """Bytes per millisecond of audio: 48 for PCM16 at 24 kHz, 8 for G.711."""
        return self.sample_rate * self.sample_width // 1000

    @property
    def beta_name(self) -> str:
        """The beta (flat session) name: ``pcm16``, ``g711_ulaw`` or ``g711_alaw``."""
        return _BETA_NAMES[self]

    @classmethod
    def from_beta(cls, name: str) -> AudioFormat:
        """The format for a beta name; raises ``KeyError`` for an unknown one."""
        return {v: k for k, v in _BETA_NAMES.items()}[name]


_BETA_NAMES: Final = {
    AudioFormat.PCM: "pcm16",
    AudioFormat.PCMU: "g711_ulaw",
    AudioFormat.PCMA: "g711_alaw",
}


def _ulaw_table() -> Int16Array:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> Int16Array:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (codes & 0x70) >> 4
    value = (codes & 0x0F) << 4
    value = np.where(segment == 0, value + 8, value + 0x108)
    value = np.where(segment > 1, value << np.maximum(segment - 1, 0), value)
    return np.where(codes & 0x80, value, -value).astype(np.int16)


_DECODE: Final = {AudioFormat.PCMU: _ulaw_table(), AudioFormat.PCMA: _alaw_table()}
# Encoding by nearest decoded value: exact for every value the decoder can produce.
_ENCODE_ORDER: Final = {fmt: np.argsort(table, kind="stable") for fmt, table in _DECODE.items()}


def decode(data: bytes, fmt: AudioFormat) -> Int16Array:
    """Samples of ``data`` as int16 at the format's own rate (a trailing odd byte is ignored)."""
    if fmt is AudioFormat.PCM:
        usable = len(data) - (len(data) % 2)
        return np.frombuffer(data, dtype="<i2", count=usable // 2).astype(np.int16, copy=False)
    return _DECODE[fmt][np.frombuffer(data, dtype=np.uint8)]


def encode(samples: Int16Array, fmt: AudioFormat) -> bytes:
    """``samples`` (at the format's own rate) as bytes of ``fmt``."""
    if fmt is AudioFormat.PCM:
        return samples.astype("<i2", copy=False).tobytes()
    table = _DECODE[fmt]
    order = _ENCODE_ORDER[fmt]
    ordered = table[order].astype(np.int32)
    x = samples.astype(np.int32)
    pos = np.clip(np.searchsorted(ordered, x), 1, len(ordered) - 1)
    nearer_left = (x - ordered[pos - 1]) <= (ordered[pos] - x)
    pick = np.where(nearer_left, pos - 1, pos)
    return order[pick].astype(np.uint8).tobytes()


def resample(samples: Int16Array, from_rate: int, to_rate: int) -> Int16Array:
    """Crude but adequate rate change between 8 and 24 kHz (for format conversion only)."""
    if from_rate == to_rate or len(samples) == 0:
        return samples
    if from_rate == 3 * to_rate:
        usable = len(samples) - len(samples) % 3
        grouped = samples[:usable].astype(np.int32).reshape(-1, 3)
        return np.asarray(grouped.mean(axis=1), dtype=np.int16)
    n_out = int(round(len(samples) * to_rate / from_rate))
    positions = np.arange(n_out) * (from_rate / to_rate)
    out = np.interp(positions, np.arange(len(samples)), samples.astype(np.float64))
    return np.asarray(np.round(out), dtype=np.int16)


def convert(data: bytes, src: AudioFormat, dst: AudioFormat) -> bytes:
    """``data`` re-encoded from ``src`` to ``dst`` (unchanged when the formats match)."""
    if src is dst:
        return data
    samples = resample(decode(data, src), src.sample_rate, dst.sample_rate)
    return encode(samples, dst)


def dbfs_to_amplitude(level_dbfs: float) -> float:
    """Peak amplitude (in int16 units) of a sine whose peak is ``level_dbfs``."""
    return FULL_SCALE * math.pow(10.0, level_dbfs / 20.0)


def rms_dbfs(samples: Int16Array) -> float:
    """RMS level of ``samples`` in dBFS (``-inf`` for digital silence)."""
    if len(samples) == 0:
        return -math.inf
    power = float(np.mean(np.square(samples.astype(np.float64))))
    return -math.inf if power <= 0.0 else 10.0 * math.log10(power / FULL_SCALE**2)


def tone(freq_hz: float, seconds: float, level_dbfs: float, rate: int = PCM_RATE) -> Int16Array:
    """A sine of ``freq_hz`` with peak ``level_dbfs`` and 5 ms fades at both ends."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    wave = np.sin(2.0 * np.pi * freq_hz * t) * dbfs_to_amplitude(level_dbfs)
    fade = min(n // 2, int(rate * 0.005))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    return np.asarray(np.round(wave), dtype=np.int16)


WORD_MS: Final = 400
"""Length of one synthetic spoken word, gap included."""

_VOICED_MS: Final = 320


def spoken_word(word: str, rate: int = PCM_RATE) -> Int16Array:
    """A deterministic speech-like burst for ``word``: a voiced harmonic tone, then a gap.

    The pitch depends on the word (so different words sound different), the level is about
    -20 dBFS RMS with a syllable-like envelope, and the length is always ``WORD_MS``.
    """
    pitch = 110.0 + 12.0 * (sum(word.encode()) % 11)
    n_voiced = rate * _VOICED_MS // 1000
    t = np.arange(n_voiced) / rate
    wave = sum(np.sin(2.0 * np.pi * pitch * h * t) / h for h in (1, 2, 3, 4))
    envelope = np.sin(np.pi * np.arange(n_voiced) / n_voiced) ** 0.5
    voiced = np.asarray(wave * envelope, dtype=np.float64)
    voiced *= dbfs_to_amplitude(-14.0) / max(1e-9, float(np.max(np.abs(voiced))))
    gap = np.zeros(rate * (WORD_MS - _VOICED_MS) // 1000)
    return np.asarray(np.round(np.concatenate([voiced, gap])), dtype=np.int16)
