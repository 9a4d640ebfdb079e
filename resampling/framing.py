"""Exact framing of an int16 stream into fixed-size chunks (e.g. 20 ms Realtime appends).

The Realtime session pushes whatever the resampler released (any length, including zero) and
sends each complete chunk; before committing the input buffer it takes the partial chunk, so no
audio waits behind a commit. Pushes copy into one preallocated chunk buffer; whole chunks
inside a large push are cut from a single copy, never by repeated concatenation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from resampling.errors import InvalidParameter, MalformedAudio
from resampling.pcm import INT16


class Framer:
    """Cuts a stream of int16 samples into chunks of exactly ``chunk_samples``.

    Each chunk returned by :meth:`push` is a new array (never a view of the caller's buffer).
    Counters: :attr:`samples_in` pushed, :attr:`samples_out` handed out (chunks plus partials
    taken), :attr:`chunks_out`; ``samples_in == samples_out + pending`` always holds.
    """

    __slots__ = ("_size", "_buffer", "_fill", "_samples_in", "_samples_out", "_chunks_out")

    def __init__(self, chunk_samples: int) -> None:
        if chunk_samples < 1:
            raise InvalidParameter(f"chunk_samples must be >= 1, not {chunk_samples}")
        self._size = chunk_samples
        self._buffer = np.empty(chunk_samples, INT16)
        self._fill = 0
        self._samples_in = 0
        self._samples_out = 0
        self._chunks_out = 0

    @classmethod
    def for_duration(cls, rate: int, chunk_ms: float) -> Framer:
        """A framer of ``chunk_ms`` at ``rate`` (20 ms at 24 kHz: 480 samples); the duration
        must be a whole number of samples."""
        samples = rate * chunk_ms / 1000.0
        if samples != int(samples) or samples < 1:
            raise InvalidParameter(f"{chunk_ms} ms at {rate} Hz is not a whole number of samples")
        return cls(int(samples))

    @property
    def chunk_samples(self) -> int:
        return self._size

    @property
    def pending(self) -> int:
        """Samples waiting for the chunk to fill."""
        return self._fill

    @property
    def samples_in(self) -> int:
        return self._samples_in

    @property
    def samples_out(self) -> int:
        return self._samples_out

    @property
    def chunks_out(self) -> int:
        """Complete chunks handed out by :meth:`push` (partials taken are not counted)."""
        return self._chunks_out

    @property
    def partial(self) -> NDArray[np.int16]:
        """A copy of the pending samples (shorter than a chunk); the framer keeps them."""
        return self._buffer[: self._fill].copy()

    def take_partial(self) -> NDArray[np.int16]:
        """Hand out the pending samples (possibly none) and start the next chunk empty."""
        partial = self._buffer[: self._fill].copy()
        self._samples_out += self._fill
        self._fill = 0
        return partial

    def push(self, samples: NDArray[np.int16]) -> list[NDArray[np.int16]]:
        """Add samples; return the chunks they complete (often none, maybe several)."""
        if not isinstance(samples, np.ndarray) or samples.dtype != INT16 or samples.ndim != 1:
            raise MalformedAudio(f"the framer takes 1-D int16 arrays, not {_describe(samples)}")
        count = len(samples)
        size = self._size
        fill = self._fill
        self._samples_in += count
        if fill + count < size:
            self._buffer[fill : fill + count] = samples
            self._fill = fill + count
            return []
        chunks: list[NDArray[np.int16]] = []
        start = 0
        if fill:
            start = size - fill
            self._buffer[fill:] = samples[:start]
            chunks.append(self._buffer.copy())
        whole = (count - start) // size
        if whole:
            block = samples[start : start + whole * size].reshape(whole, size).copy()
            chunks.extend(block)
            start += whole * size
        rest = count - start
        self._buffer[:rest] = samples[start:]
        self._fill = rest
        self._chunks_out += len(chunks)
        self._samples_out += len(chunks) * size
        return chunks

    def __repr__(self) -> str:
        return (
            f"Framer({self._size} samples, pending={self._fill}, in={self._samples_in}, "
            f"out={self._samples_out}, chunks={self._chunks_out})"
        )


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-D array of {value.dtype}"
    return type(value).__name__
