"""The caller-audio ring: exact reads by global index, bounded, losses counted."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from sessions.audio_log import AudioRing


def test_reads_return_what_was_written() -> None:
    ring = AudioRing(seconds=0.01)  # 240 samples
    data = np.arange(1000, dtype=np.int16)
    for start in range(0, 1000, 70):
        ring.write(data[start : start + 70])
    assert ring.end == 1000 and ring.start == 760
    got, lost = ring.read(800, 900)
    assert lost == 0 and got.tolist() == list(range(800, 900))
    got, lost = ring.read(700)
    assert lost == 60 and got.tolist() == list(range(760, 1000))


def test_a_write_larger_than_the_ring_keeps_the_newest() -> None:
    ring = AudioRing(seconds=0.01)
    ring.write(np.arange(500, dtype=np.int16))
    got, lost = ring.read(0)
    assert lost == 260 and got.tolist() == list(range(260, 500))


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=30), st.integers(0, 3000), st.integers(0, 3000))
def test_any_sequence_of_writes_reads_back_exactly(sizes: list[int], a: int, b: int) -> None:
    ring = AudioRing(seconds=0.01)
    total = sum(sizes)
    data = (np.arange(total) % 30000).astype(np.int16)
    offset = 0
    for n in sizes:
        ring.write(data[offset : offset + n])
        offset += n
    start, end = min(a, b), max(a, b)
    got, lost = ring.read(start, end)
    kept_from = max(total - 240, 0)
    expected = data[max(start, kept_from) : min(end, total)]
    assert got.tolist() == expected.tolist()
    assert lost == max(kept_from - start, 0)
