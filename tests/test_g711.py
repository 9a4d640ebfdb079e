"""G.711 µ-law and the telephone legs of a SIP call (``bridge.local.g711``)."""

from __future__ import annotations

import numpy as np

from bridge.local.g711 import (
    PHONE_RATE,
    ROOM_RATE,
    phone_to_room,
    room_to_phone,
    ulaw_decode,
    ulaw_encode,
)

EVERY = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def test_reference_code_points() -> None:
    # G.711 µ-law: zero is 0xFF on the wire, the extremes 0x80 / 0x00 decode to ±32124.
    assert ulaw_encode(np.array([0, 32767, -32768], np.int16)).tolist() == [0xFF, 0x80, 0x00]
    assert ulaw_decode(np.array([0xFF, 0x7F, 0x80, 0x00], np.uint8)).tolist() == [
        0,
        0,
        32124,
        -32124,
    ]


def test_every_code_decodes_to_a_value_that_encodes_back_to_it() -> None:
    codes = np.arange(256, dtype=np.uint8)
    codes = codes[codes != 0x7F]  # negative zero: decodes to 0, which encodes as 0xFF
    assert np.array_equal(ulaw_encode(ulaw_decode(codes)), codes)


def test_the_quantisation_error_stays_within_half_a_step() -> None:
    x = EVERY.astype(np.int32)
    error = np.abs(ulaw_decode(ulaw_encode(EVERY)).astype(np.int32) - x)
    magnitude = np.abs(x)
    inside = magnitude <= 32635  # beyond it µ-law clips
    # 16 steps per segment, each segment twice the last in (|x| + 132): half a step is at
    # most (|x| + 132) / 32, plus up to 3 from working on 14 bits (x >> 2).
    assert np.all(error[inside] <= (magnitude[inside] + 132) / 32 + 3.5)
    assert np.all(np.diff(ulaw_decode(ulaw_encode(EVERY))) >= 0)  # monotonic


def test_the_phone_legs_keep_the_telephone_band_and_the_timing() -> None:
    t = np.arange(ROOM_RATE) / ROOM_RATE
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    high = (8000 * np.sin(2 * np.pi * 6000 * t)).astype(np.int16)
    published = phone_to_room(tone, ROOM_RATE)
    assert published.size == tone.size
    middle = slice(ROOM_RATE // 4, 3 * ROOM_RATE // 4)
    residual = published[middle].astype(float) - tone[middle]
    assert np.sqrt(np.mean(residual**2)) < 0.05 * 8000 / np.sqrt(2)  # aligned, ~G.711 noise
    assert np.abs(phone_to_room(high, ROOM_RATE)[middle]).max() < 100  # above 4 kHz: gone
    heard = room_to_phone(tone, ROOM_RATE)
    assert heard.size == PHONE_RATE
    expected = tone[::6].astype(float)
    assert np.corrcoef(heard[2000:6000], expected[2000:6000])[0, 1] > 0.99
