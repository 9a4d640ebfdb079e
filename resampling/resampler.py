"""The streaming resampler: int16 (mono or interleaved) at one rate in, int16 mono out.

One :class:`Resampler` per direction per caller, never shared. It wraps
``soxr.ResampleStream`` in float32: libsoxr's int16 output path adds TPDF dither with a seed
taken from the clock (two runs of the same input differ by up to 2 LSB), so the stream runs in
float32 on the int16 scale and rounds once, to nearest, at the output. That keeps the output
deterministic and costs about 2-3 µs per 10 ms frame (see the report).

Sample accounting is exact. Each :meth:`~Resampler.push` returns everything libsoxr releases;
:meth:`~Resampler.flush` returns the rest, so that a stream of ``n`` input frames yields exactly
``ceil(n * out_rate / in_rate)`` output samples: one for every output instant ``k / out_rate``
inside the input's span. (libsoxr's own flush follows no fixed rule: measured, its count is
sometimes the floor, sometimes the ceiling, and with ``vr=True`` sometimes one below the
floor; it never runs ahead of the exact value by a whole sample, so the ceiling is always
reachable.) The flush pads the input with a few zero samples, which is what libsoxr's own flush
does, and trims to the exact count.

A change of input rate or channel count mid-stream is a new stream: :meth:`~Resampler.handover`
ends this one with a short fade-out and returns a successor that fades in, so the seam has no
click (see its docstring).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np
import soxr
from numpy.typing import NDArray

from resampling.errors import InvalidParameter, InvalidState, UnsupportedFormat
from resampling.modes import MAX_CHANNELS, Mode, check_rate, default_mode
from resampling.pcm import (
    INT16,
    Pcm,
    as_samples,
    float_to_int16,
    to_float_mono,
    to_int16_mono,
)

DEFAULT_FADE_MS: Final = 5.0
"""Length of the fade-out/fade-in at a :meth:`Resampler.handover` seam."""


class Resampler:
    """Streaming conversion of int16 PCM at ``in_rate`` to int16 mono at ``out_rate``.

    ``quality=None`` picks :func:`~resampling.modes.default_mode` for the pair. When the rates
    are equal no soxr stream exists: push only validates, downmixes and copies.

    Output arrays are always new arrays the caller owns. An empty push returns an empty array.
    Bad input raises :class:`~resampling.errors.MalformedAudio` and leaves the stream untouched;
    an unsupported rate or channel count raises :class:`~resampling.errors.UnsupportedFormat`.
    """

    __slots__ = (
        "_in_rate",
        "_out_rate",
        "_channels",
        "_mode",
        "_stream",
        "_samples_in",
        "_samples_out",
        "_finished",
        "_last_out",
        "_fade_ramp",
        "_fade_pos",
    )

    def __init__(
        self, in_rate: int, out_rate: int, channels: int = 1, quality: Mode | None = None
    ) -> None:
        check_rate(in_rate)
        check_rate(out_rate)
        if not 1 <= channels <= MAX_CHANNELS:
            raise UnsupportedFormat("channel count", channels, f"1 to {MAX_CHANNELS}")
        if quality is not None and not isinstance(quality, Mode):
            raise InvalidParameter(f"quality must be a resampling Mode or None, not {quality!r}")
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._channels = channels
        self._mode = quality if quality is not None else default_mode(in_rate, out_rate)
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=self._mode.quality, vr=self._mode.vr
            )
        )
        self._samples_in = 0
        self._samples_out = 0
        self._finished = False
        self._last_out: NDArray[np.int16] | None = None
        self._fade_ramp: NDArray[np.float64] | None = None
        self._fade_pos = 0

    # -- configuration -------------------------------------------------------------------

    @property
    def in_rate(self) -> int:
        return self._in_rate

    @property
    def out_rate(self) -> int:
        return self._out_rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def mode(self) -> Mode:
        """The libsoxr mode in use (ignored when ``in_rate == out_rate``)."""
        return self._mode

    @property
    def finished(self) -> bool:
        """True once :meth:`flush` or :meth:`handover` has ended the stream."""
        return self._finished

    # -- accounting ----------------------------------------------------------------------

    @property
    def samples_in(self) -> int:
        """Input frames accepted (samples per channel)."""
        return self._samples_in

    @property
    def samples_out(self) -> int:
        """Output samples returned by :meth:`push`, :meth:`flush` and :meth:`handover`."""
        return self._samples_out

    @property
    def expected_out(self) -> int:
        """Output samples the input so far is worth: ``ceil(samples_in * out_rate / in_rate)``;
        :attr:`samples_out` equals it after :meth:`flush`."""
        return -(-self._samples_in * self._out_rate // self._in_rate)

    @property
    def withheld(self) -> float:
        """Output held back right now, in output samples: the exact output the input so far is
        worth (``samples_in * out_rate / in_rate``) minus what was returned. This is the delay
        the resampler adds beyond the frame itself."""
        return self._samples_in * self._out_rate / self._in_rate - self._samples_out

    @property
    def withheld_ms(self) -> float:
        """:attr:`withheld` in milliseconds."""
        return self.withheld * 1000.0 / self._out_rate

    # -- streaming -----------------------------------------------------------------------

    def push(self, pcm: Pcm) -> NDArray[np.int16]:
        """Feed whole frames of int16 PCM; return the mono output released so far (maybe empty)."""
        if self._finished:
            raise InvalidState("push() after the resampler stream was flushed or handed over")
        channels = self._channels
        samples = as_samples(pcm, channels)
        frames = len(samples) // channels
        if not frames:
            return np.empty(0, INT16)
        stream = self._stream
        if stream is None:
            out = to_int16_mono(samples, channels)
        else:
            # (n, 1) in and out: python-soxr then skips its newaxis/squeeze round trip.
            mono = samples.astype(np.float32) if channels == 1 else to_float_mono(samples, channels)
            out = float_to_int16(stream.resample_chunk(mono.reshape(-1, 1))).reshape(-1)
        self._samples_in += frames
        if len(out):
            self._samples_out += len(out)
            if self._fade_ramp is not None:
                self._fade_in(out, self._fade_ramp)
            self._last_out = out
        return out

    def flush(self) -> NDArray[np.int16]:
        """End the stream and return the withheld tail, making the total output exact.

        Afterwards :meth:`push` raises :class:`~resampling.errors.InvalidState`; a second flush
        returns an empty array.
        """
        if self._finished:
            return np.empty(0, INT16)
        self._finished = True
        need = self.expected_out - self._samples_out
        if self._stream is None or need <= 0:
            return np.empty(0, INT16)
        # Enough zeros that libsoxr releases at least two samples past the end of the input.
        pad = np.zeros(-(-2 * self._in_rate // self._out_rate) + 1, np.float32)
        released = float_to_int16(self._stream.resample_chunk(pad, last=True))
        tail = np.zeros(need, INT16)
        available = min(need, len(released))
        tail[:available] = released[:available]
        self._samples_out += need
        if self._fade_ramp is not None:
            self._fade_in(tail, self._fade_ramp)
        self._last_out = tail
        return tail

    def reset(self) -> None:
        """Drop the withheld audio and start a new stream with the same configuration (e.g. on
        barge-in, on the way back to the room). Counters restart from zero."""
        if self._stream is not None:
            self._stream.clear()
        self._samples_in = 0
        self._samples_out = 0
        self._finished = False
        self._last_out = None
        self._fade_ramp = None
        self._fade_pos = 0

    def handover(
        self,
        in_rate: int,
        channels: int = 1,
        *,
        quality: Mode | None = None,
        fade_ms: float = DEFAULT_FADE_MS,
    ) -> tuple[NDArray[np.int16], Resampler]:
        """End this stream and start the next one (new input rate or channel count) without a click.

        Returns ``(tail, successor)``: send ``tail`` on, then feed the new frames to
        ``successor`` (same ``out_rate``). The successor is built first, so an unsupported rate
        raises before anything here changes.

        The seam is a dip, not a cut: ``tail`` is this stream's exact :meth:`flush` tail with a
        raised-cosine fade-out over its last ``fade_ms`` that reaches zero, and the successor's
        first ``fade_ms`` of output fade in from zero. If the tail is shorter than the fade (a
        fixed-rate mode at a block boundary, or the same-rate path, which withholds nothing),
        the last sample is held for the missing part, so at most ``fade_ms`` of output is
        added: :attr:`samples_out` counts it. Accounting is per stream: this stream's counters
        stay final, the successor's start at zero, and their ``samples_out`` add up to the
        output timeline.
        """
        if self._finished:
            raise InvalidState("handover() after the resampler stream was flushed")
        if not fade_ms >= 0.0:
            raise InvalidParameter(f"fade_ms must be >= 0, not {fade_ms!r}")
        successor = Resampler(in_rate, self._out_rate, channels, quality)
        fade_len = round(fade_ms * self._out_rate / 1000.0)
        previous = self._last_out
        tail = self.flush()
        if fade_len:
            successor._fade_ramp = _fade_in_ramp(fade_len)
            short = fade_len - len(tail)
            if short > 0:
                held = tail[-1] if len(tail) else (previous[-1] if previous is not None else 0)
                tail = np.concatenate([tail, np.full(short, held, INT16)])
                self._samples_out += short
            tail[-fade_len:] = np.rint(tail[-fade_len:] * _fade_in_ramp(fade_len)[::-1])
        return tail, successor

    def _fade_in(self, out: NDArray[np.int16], ramp: NDArray[np.float64]) -> None:
        pos = self._fade_pos
        count = min(len(out), len(ramp) - pos)
        out[:count] = np.rint(out[:count] * ramp[pos : pos + count])
        self._fade_pos = pos + count
        if self._fade_pos == len(ramp):
            self._fade_ramp = None

    def __repr__(self) -> str:
        return (
            f"Resampler({self._in_rate} -> {self._out_rate} Hz, {self._channels} ch, "
            f"{self._mode.name}, in={self._samples_in}, out={self._samples_out}"
            f"{', finished' if self._finished else ''})"
        )


@lru_cache(maxsize=16)
def _fade_in_ramp(length: int) -> NDArray[np.float64]:
    """Raised-cosine gains from 0 (first sample) rising towards 1; reversed, it ends at 0."""
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(length) / length)
    ramp.flags.writeable = False
    return ramp
