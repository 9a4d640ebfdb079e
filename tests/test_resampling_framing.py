"""The framer: exact fixed-size chunks, the partial chunk on demand, counters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from resampling import Framer
from resampling.errors import InvalidParameter, MalformedAudio


def ramp(start: int, count: int) -> np.ndarray:
    return (np.arange(start, start + count) % 30_000).astype(np.int16)


def test_20_ms_at_24k_is_480_samples() -> None:
    assert Framer.for_duration(24_000, 20).chunk_samples == 480
    assert Framer.for_duration(24_000, 10).chunk_samples == 240
    with pytest.raises(InvalidParameter):
        Framer.for_duration(22_050, 10)  # 220.5 samples
    with pytest.raises(InvalidParameter):
        Framer.for_duration(24_000, 0.01)
    with pytest.raises(InvalidParameter):
        Framer(0)


def test_resampler_sized_pushes_give_one_chunk_every_second_push() -> None:
    framer = Framer(480)
    assert framer.push(ramp(0, 240)) == []
    assert framer.pending == 240
    [chunk] = framer.push(ramp(240, 240))
    assert np.array_equal(chunk, ramp(0, 480))
    assert framer.pending == 0
    assert (framer.samples_in, framer.samples_out, framer.chunks_out) == (480, 480, 1)


def test_a_large_push_gives_several_chunks_and_keeps_the_rest() -> None:
    framer = Framer(480)
    framer.push(ramp(0, 100))
    chunks = framer.push(ramp(100, 2_000))
    assert [len(chunk) for chunk in chunks] == [480, 480, 480, 480]
    assert np.array_equal(np.concatenate(chunks), ramp(0, 1_920))
    assert np.array_equal(framer.partial, ramp(1_920, 180))


def test_partial_is_a_copy_and_take_partial_hands_it_out() -> None:
    framer = Framer(480)
    framer.push(ramp(0, 300))
    peek = framer.partial
    peek[:] = 0
    assert framer.pending == 300  # peeking takes nothing
    taken = framer.take_partial()
    assert np.array_equal(taken, ramp(0, 300))
    assert framer.pending == 0 and framer.samples_out == 300
    assert len(framer.take_partial()) == 0  # nothing left
    [chunk] = framer.push(ramp(300, 480))  # the next chunk starts empty
    assert np.array_equal(chunk, ramp(300, 480))


def test_chunks_never_alias_the_callers_buffer_or_each_other() -> None:
    framer = Framer(4)
    source = ramp(0, 10)
    chunks = framer.push(source)
    source[:] = -1
    more = framer.push(ramp(10, 6))
    assert [chunk.tolist() for chunk in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [chunk.tolist() for chunk in more] == [[8, 9, 10, 11], [12, 13, 14, 15]]
    for chunk in chunks + more:
        assert not np.shares_memory(chunk, source)


def test_empty_pushes_are_fine() -> None:
    framer = Framer(480)
    assert framer.push(np.empty(0, np.int16)) == []
    assert (framer.samples_in, framer.pending) == (0, 0)


@pytest.mark.parametrize(
    "bad", [np.zeros(10, np.float32), np.zeros((5, 2), np.int16), b"\x00\x00", [1, 2]]
)
def test_bad_input_is_refused_and_changes_nothing(bad: object) -> None:
    framer = Framer(480)
    framer.push(ramp(0, 100))
    with pytest.raises(MalformedAudio, match="1-D int16"):
        framer.push(bad)  # type: ignore[arg-type]
    assert (framer.samples_in, framer.pending) == (100, 100)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=600),
    pushes=st.lists(st.integers(min_value=0, max_value=1_500), max_size=30),
    take_every=st.integers(min_value=0, max_value=5),
)
def test_any_sequence_of_pushes_is_cut_exactly(
    size: int, pushes: list[int], take_every: int
) -> None:
    framer = Framer(size)
    out: list[np.ndarray] = []
    start = 0
    for index, count in enumerate(pushes):
        chunks = framer.push(ramp(start, count))
        assert all(len(chunk) == size for chunk in chunks)
        out += chunks
        start += count
        if take_every and index % take_every == 0:
            out.append(framer.take_partial())
        assert framer.samples_in == framer.samples_out + framer.pending == start
    out.append(framer.take_partial())
    assert np.array_equal(np.concatenate([np.empty(0, np.int16), *out]), ramp(0, start))


def test_repr_shows_the_counters() -> None:
    framer = Framer(480)
    framer.push(ramp(0, 500))
    assert repr(framer) == "Framer(480 samples, pending=20, in=500, out=480, chunks=1)"
