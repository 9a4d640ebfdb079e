"""Crafted WAV files: every layout and encoding a recording tool writes, and broken ones.

:func:`craft` writes the RIFF bytes by hand (never through ``wave``), so tests can make
exactly the file a user has: 8/16/24/32-bit integer, 32/64-bit float, µ-law/A-law, plain or
WAVE_FORMAT_EXTENSIBLE, any rate or channel count in the header, a data chunk that lies about
its size or ends mid-frame, chunks before and after the audio.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
from numpy.typing import NDArray

PCM: Final = 1
FLOAT: Final = 3
ALAW: Final = 6
MULAW: Final = 7
EXTENSIBLE: Final = 0xFFFE
GUID_TAIL: Final = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def tone(
    rate: int, seconds: float, *, channels: int = 1, freq: float = 440.0
) -> NDArray[np.float64]:
    """A 0.5 full-scale sine, ``(frames, channels)`` floats in [-1, 1] (channels in phase)."""
    t = np.arange(round(rate * seconds)) / rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.repeat(mono[:, None], channels, axis=1)


def encode(frames: NDArray[np.float64], code: int, bits: int) -> bytes:
    """``frames`` (floats in [-1, 1]) as interleaved little-endian samples of one encoding."""
    x = np.clip(frames.reshape(-1), -1.0, 1.0)
    if code == FLOAT:
        return x.astype("<f4" if bits == 32 else "<f8").tobytes()
    if code in (ALAW, MULAW):
        return _g711(np.rint(x * 32767).astype(np.int16), code)
    full = np.rint(x * (2 ** (bits - 1) - 1)).astype(np.int64)
    if bits == 8:
        return (full + 128).astype(np.uint8).tobytes()
    if bits == 16:
        return full.astype("<i2").tobytes()
    if bits == 24:
        as32 = full.astype("<i4").tobytes()
        return b"".join(as32[i : i + 3] for i in range(0, len(as32), 4))
    return full.astype("<i4").tobytes()


def craft(
    frames: NDArray[np.float64],
    rate: int,
    *,
    code: int = PCM,
    bits: int = 16,
    extensible: bool = False,
    container_bits: int | None = None,
    channels: int | None = None,
    data: bytes | None = None,
    data_size: int | None = None,
    before_data: bytes = b"",
    after_data: bytes = b"",
) -> bytes:
    """A WAV file of ``frames`` (``(n, channels)`` floats). ``data`` replaces the encoded audio,
    ``data_size`` the size the data chunk claims, ``channels`` the count in the header;
    ``before_data``/``after_data`` are whole extra chunks. ``container_bits`` (EXTENSIBLE)
    stores ``bits`` valid bits in wider samples, left-justified."""
    nch = frames.shape[1] if channels is None else channels
    container = container_bits or bits
    if data is None:
        if container != bits:
            shift = container - bits
            full = np.rint(np.clip(frames.reshape(-1), -1, 1) * (2 ** (bits - 1) - 1))
            data = (full.astype(np.int64) << shift).astype("<i4").tobytes()
        else:
            data = encode(frames, code, bits)
    block = nch * container // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", EXTENSIBLE, nch, rate, rate * block, block, container)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", code) + GUID_TAIL
    else:
        fmt = struct.pack("<HHIIHH", code, nch, rate, rate * block, block, container)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + chunk(b"fmt ", fmt) + before_data
    body += b"data" + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b"")
    body += after_data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(chunk_id: bytes, payload: bytes) -> bytes:
    """One RIFF chunk, padded to an even length."""
    pad = b"\0" if len(payload) % 2 else b""
    return chunk_id + struct.pack("<I", len(payload)) + payload + pad


def _g711(samples: NDArray[np.int16], code: int) -> bytes:
    """Encode by nearest decoded value (tests only: a table search, not the G.711 encoder)."""
    from bridge.local.wavfile import _ALAW, _MULAW

    table = (_ALAW if code == ALAW else _MULAW).astype(np.int32)
    order = np.argsort(table)
    idx = np.searchsorted(table[order], samples.astype(np.int32)).clip(0, 255)
    below = (idx - 1).clip(0, 255)
    pick = np.where(
        np.abs(table[order][idx] - samples) <= np.abs(table[order][below] - samples), idx, below
    )
    return order[pick].astype(np.uint8).tobytes()
