"""Shared helpers for the resampling tests: signals and the one-shot soxr reference."""

from __future__ import annotations

import numpy as np
import soxr
from numpy.typing import NDArray

from resampling import Mode, Resampler


def noise(samples: int, *, seed: int = 0, rms: float = 6000.0) -> NDArray[np.int16]:
    values = np.random.default_rng(seed).normal(0.0, rms, samples)
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def to_int16(values: NDArray[np.float32]) -> NDArray[np.int16]:
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def one_shot(
    signal: NDArray[np.int16] | NDArray[np.float32], in_rate: int, out_rate: int, mode: Mode
) -> NDArray[np.int16]:
    """libsoxr given the whole signal at once (float32 on the int16 scale, rounded at the end).

    Fixed-rate modes use ``soxr.resample``; the vr engine has no one-shot call, so it gets one
    ``ResampleStream`` chunk with ``last=True``.
    """
    values = signal.astype(np.float32)
    if mode.vr:
        stream = soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float32", quality=mode.quality, vr=True
        )
        return to_int16(stream.resample_chunk(values, last=True))
    return to_int16(soxr.resample(values, in_rate, out_rate, quality=mode.quality))


def chunked(resampler: Resampler, signal: NDArray[np.int16], sizes: list[int]) -> NDArray[np.int16]:
    """Push ``signal`` cut at the given chunk sizes (cycled), then flush; all the output."""
    parts = []
    start = 0
    index = 0
    while start < len(signal):
        size = sizes[index % len(sizes)]
        parts.append(resampler.push(signal[start : start + size]))
        start += size
        index += 1
    parts.append(resampler.flush())
    return np.concatenate(parts)


def exact_count(samples_in: int, in_rate: int, out_rate: int) -> int:
    """The count the resampler promises after flush: ceil(n * out_rate / in_rate)."""
    return -(-samples_in * out_rate // in_rate)
