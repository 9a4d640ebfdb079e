"""The mix-mode mixer: sums sources block by block; a lagging source never holds others."""

from __future__ import annotations

import numpy as np

from bridge.call.mixer import Mixer


def const(value: int, n: int) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def test_blocks_come_out_once_every_source_contributed() -> None:
    m = Mixer(block=4)
    m.add("a")
    m.add("b")
    assert m.push("a", const(100, 6)) == []
    [block] = m.push("b", const(10, 4))
    assert block.tolist() == [110] * 4


def test_a_lagging_source_counts_as_silence_beyond_max_lag() -> None:
    m = Mixer(block=4, max_lag=2)
    m.add("a")
    m.add("quiet")
    assert m.push("a", const(5, 8)) == []  # two blocks ahead: still waiting
    blocks = m.push("a", const(5, 4))  # three ahead: the oldest goes out, quiet = silence
    assert [b.tolist() for b in blocks] == [[5] * 4]
    [block] = m.push("quiet", const(1, 4))  # it is back: mixed with what waited
    assert block.tolist() == [6] * 4


def test_sums_are_clipped_not_wrapped() -> None:
    m = Mixer(block=2)
    m.add("a")
    m.add("b")
    m.push("a", const(30000, 2))
    [block] = m.push("b", const(30000, 2))
    assert block.tolist() == [32767, 32767]


def test_removing_a_source_releases_what_waited_for_it() -> None:
    m = Mixer(block=2)
    m.add("a")
    m.add("b")
    assert m.push("a", const(1, 4)) == []
    assert [b.tolist() for b in m.remove("b")] == [[1, 1], [1, 1]]
