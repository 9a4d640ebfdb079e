"""PCM16 buffers in: validation, and the downmix of interleaved channels to mono.

Accepted input is little-endian/native int16 samples, interleaved when there are several
channels, as ``bytes``, ``bytearray``, a ``memoryview`` (bytes or ``'h'`` items, as
``rtc.AudioFrame.data`` is) or a numpy ``int16`` array (1-D interleaved, or 2-D
``(frames, channels)``). Anything else raises :class:`~resampling.errors.MalformedAudio` before
any state changes, so a bad buffer never costs audio already accepted.

Downmix averages the channels. Resampled streams average in float32 (exact for up to 8
channels: the sums stay below 2**24) and round once, at the resampler's output; the same-rate
path rounds the average half to even. The average of int16 values always fits int16, so no
clipping is needed there.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray

from resampling.errors import MalformedAudio

Pcm: TypeAlias = bytes | bytearray | memoryview | NDArray[np.int16]
"""What :meth:`Resampler.push <resampling.Resampler.push>` accepts."""

INT16: Final = np.dtype(np.int16)
# memoryview formats read as raw bytes, plus native/little-endian 16-bit items ('h').
_BUFFER_FORMATS: Final = frozenset({"B", "b", "c", "h", "<h", "=h"})


def as_samples(pcm: Pcm, channels: int) -> NDArray[np.int16]:
    """``pcm`` as a 1-D int16 array of interleaved samples (a view where possible, never copied
    needlessly), or :class:`MalformedAudio` if it is not whole frames of ``channels`` int16s."""
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != INT16:
            raise MalformedAudio(f"samples must be int16, got an array of {pcm.dtype}")
        if pcm.ndim == 2 and pcm.shape[1] == channels:
            samples: NDArray[np.int16] = pcm.reshape(-1)
        elif pcm.ndim == 1:
            samples = pcm
        else:
            raise MalformedAudio(
                f"expected a 1-D interleaved array or (frames, {channels}), got shape {pcm.shape}"
            )
    elif isinstance(pcm, bytes | bytearray | memoryview):
        if isinstance(pcm, memoryview):
            if pcm.format not in _BUFFER_FORMATS:
                raise MalformedAudio(f"memoryview of {pcm.format!r} items is not int16 PCM")
            nbytes = pcm.nbytes
        else:
            nbytes = len(pcm)
        if nbytes % 2:
            raise MalformedAudio(f"{nbytes} bytes is not a whole number of int16 samples")
        try:
            samples = np.frombuffer(pcm, dtype=INT16)
        except (ValueError, BufferError) as exc:  # e.g. a non-contiguous memoryview
            raise MalformedAudio(f"unreadable buffer: {exc}") from exc
    else:
        raise MalformedAudio(f"expected bytes, memoryview or an int16 array, got {type(pcm)}")
    if len(samples) % channels:
        raise MalformedAudio(
            f"{len(samples)} samples do not divide into frames of {channels} channels"
        )
    return samples


def to_float_mono(samples: NDArray[np.int16], channels: int) -> NDArray[np.float32]:
    """Interleaved int16 → float32 mono on the int16 scale (channels averaged, not rounded)."""
    if channels == 1:
        return samples.astype(np.float32)
    mono = samples[0::channels].astype(np.float32)
    for channel in range(1, channels):
        mono += samples[channel::channels]
    mono /= np.float32(channels)
    return mono


def to_int16_mono(samples: NDArray[np.int16], channels: int) -> NDArray[np.int16]:
    """Interleaved int16 → a new int16 mono array (channels averaged, rounded half to even)."""
    if channels == 1:
        return samples.copy()
    mono = to_float_mono(samples, channels)
    np.rint(mono, out=mono)
    return mono.astype(INT16)


_LOW: Final = np.float32(-32768.0)
_HIGH: Final = np.float32(32767.0)


def float_to_int16(values: NDArray[np.float32]) -> NDArray[np.int16]:
    """Round to nearest (half to even) and clip to int16. Modifies ``values`` in place."""
    np.minimum(values, _HIGH, out=values)
    np.maximum(values, _LOW, out=values)
    np.rint(values, out=values)
    return values.astype(INT16)
