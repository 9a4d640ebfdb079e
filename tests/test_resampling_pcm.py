"""PCM input validation, downmix and the float-to-int16 rounding."""

from __future__ import annotations

import numpy as np
import pytest

from resampling.errors import MalformedAudio
from resampling.pcm import as_samples, float_to_int16, to_float_mono, to_int16_mono


def test_arrays_come_back_as_views_and_bytes_are_read_in_place() -> None:
    frame = np.arange(8, dtype=np.int16)
    assert as_samples(frame, 2) is frame
    data = frame.tobytes()
    samples = as_samples(data, 1)
    assert samples.tolist() == list(range(8)) and not samples.flags.writeable
    assert as_samples(frame.reshape(4, 2), 2).tolist() == list(range(8))


def test_a_2d_array_with_the_wrong_channel_count_is_refused() -> None:
    with pytest.raises(MalformedAudio, match=r"\(frames, 2\)"):
        as_samples(np.zeros((4, 3), np.int16), 2)
    with pytest.raises(MalformedAudio, match="shape"):
        as_samples(np.zeros((2, 2, 2), np.int16), 2)


def test_odd_byte_counts_name_the_count() -> None:
    with pytest.raises(MalformedAudio, match="^malformed audio: 961 bytes is not a whole"):
        as_samples(b"\x00" * 961, 1)
    with pytest.raises(MalformedAudio, match="961 bytes"):
        as_samples(memoryview(b"\x00" * 961), 1)


def test_float_mono_averages_without_rounding() -> None:
    interleaved = np.array([1, 2, -3, -4, 32767, 32767], np.int16)
    assert to_float_mono(interleaved, 2).tolist() == [1.5, -3.5, 32767.0]
    assert to_float_mono(interleaved, 1).dtype == np.float32
    three = np.array([1, 1, 2, -32768, -32768, -32768], np.int16)
    assert to_float_mono(three, 3).tolist() == pytest.approx([4 / 3, -32768.0])


def test_int16_mono_rounds_half_to_even_and_copies() -> None:
    interleaved = np.array([1, 2, 2, 3, -1, -2, -32768, -32767], np.int16)
    assert to_int16_mono(interleaved, 2).tolist() == [2, 2, -2, -32768]
    mono = np.array([5, 6], np.int16)
    copied = to_int16_mono(mono, 1)
    assert copied.tolist() == [5, 6] and not np.shares_memory(copied, mono)


def test_float_to_int16_rounds_to_nearest_even_and_saturates() -> None:
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 40_000.0, -40_000.0, 32767.4], np.float32)
    assert float_to_int16(values).tolist() == [0, 2, 2, 0, -2, 0, 32767, -32768, 32767]
