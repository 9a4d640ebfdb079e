"""Mixing several callers into one 24 kHz stream (``input = "mix"`` profiles).

Sans-I/O: sources push their resampled audio as it arrives and the mixer emits fixed blocks
once every active source has contributed one. A source that falls more than ``max_lag``
blocks behind the leader (a muted or stalled participant, a network hiccup) counts as
silence for the blocks it missed, so one quiet participant never holds the others back.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_EMPTY = np.zeros(0, dtype=np.int16)


class Mixer:
    def __init__(self, block: int = 240, max_lag: int = 3) -> None:
        self.block = block
        self.max_lag = max_lag
        self._buffers: dict[str, NDArray[np.int16]] = {}

    @property
    def sources(self) -> list[str]:
        return list(self._buffers)

    def add(self, source: str) -> None:
        self._buffers.setdefault(source, _EMPTY)

    def remove(self, source: str) -> list[NDArray[np.int16]]:
        """Drop ``source``; returns the blocks its departure releases."""
        self._buffers.pop(source, None)
        return self._ready()

    def push(self, source: str, samples: NDArray[np.int16]) -> list[NDArray[np.int16]]:
        """Add audio of ``source``; returns the mixed blocks now complete."""
        if source not in self._buffers:
            self._buffers[source] = _EMPTY
        current = self._buffers[source]
        self._buffers[source] = np.concatenate((current, samples)) if current.size else samples
        return self._ready()

    def _ready(self) -> list[NDArray[np.int16]]:
        out: list[NDArray[np.int16]] = []
        block = self.block
        while self._buffers:
            sizes = [b.size for b in self._buffers.values()]
            lead = max(sizes)
            if min(sizes) < block and lead < (self.max_lag + 1) * block:
                break
            if lead < block:
                break
            acc = np.zeros(block, dtype=np.int32)
            for source, buffer in self._buffers.items():
                take = buffer[:block]
                acc[: take.size] += take
                self._buffers[source] = buffer[take.size :]
            out.append(np.clip(acc, -32768, 32767).astype(np.int16))
        return out
