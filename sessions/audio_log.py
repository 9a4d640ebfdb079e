"""The caller's recent audio, by global sample index (24 kHz mono PCM16).

Every sample appended to the conversation is written here once, whatever socket it goes
to. When a socket dies, what it had not yet written is re-sent from here to the next one;
when a socket is replaced, the tail of the old one is re-sent so no onset of speech is cut;
user turns that have no transcript are replayed from here as audio. The ring is bounded:
audio older than ``seconds`` is gone, and asking for it counts as lost.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE = 24_000


class AudioRing:
    def __init__(self, seconds: float = 30.0) -> None:
        self.capacity = int(seconds * SAMPLE_RATE)
        self._buffer = np.zeros(self.capacity, dtype=np.int16)
        self.end = 0  # global index one past the newest sample

    @property
    def start(self) -> int:
        """Global index of the oldest sample still held."""
        return max(self.end - self.capacity, 0)

    def write(self, samples: NDArray[np.int16]) -> None:
        n = samples.size
        if n > self.capacity:  # only the newest ``capacity`` samples can be kept
            self.end += n - self.capacity
            samples = samples[-self.capacity :]
            n = self.capacity
        position = self.end % self.capacity
        first = min(n, self.capacity - position)
        self._buffer[position : position + first] = samples[:first]
        if first < n:
            self._buffer[: n - first] = samples[first:]
        self.end += n

    def read(self, start: int, end: int | None = None) -> tuple[NDArray[np.int16], int]:
        """Samples ``[start, end)`` still held, and how many of them were already gone."""
        end = self.end if end is None else min(end, self.end)
        lost = max(self.start - start, 0)
        start = max(start, self.start)
        if start >= end:
            return np.zeros(0, dtype=np.int16), lost
        first = start % self.capacity
        last = first + (end - start)
        if last <= self.capacity:
            return self._buffer[first:last].copy(), lost
        return np.concatenate((self._buffer[first:], self._buffer[: last - self.capacity])), lost
