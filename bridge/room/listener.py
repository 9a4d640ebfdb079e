"""A track as a participant receives it: frames recorded with their arrival times.

:class:`Listener` reads one audio track (a loopback's local track, or a remote participant's
track in a real room) at a chosen rate, mono, 10 ms at a time, and keeps what it received
together with when each frame arrived, so a recording can be aligned with the wall clock
(:meth:`Listener.position_at`): ``bridge try`` aligns what the caller heard with what it
played; the benchmark measures replies, gaps and cut points in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from bridge.room.routed_audio import RoutedAudioStream

HEARD_LEVEL = 24  # |sample|: louder is heard (Opus decodes digital silence to a few LSB)


class Listener:
    """Records a track as another participant receives it: 24 kHz mono, frame by frame.

    ``keep=False`` only counts (for long runs that measure memory, like the soak);
    ``on_frame(samples, arrival_time)`` sees every frame as it arrives (the benchmark's meter).
    """

    MAX_MARKS = 3000  # frame arrival times kept: the first 30 s, where alignment happens

    def __init__(
        self,
        track: rtc.Track,
        sample_rate: int = 24_000,
        *,
        keep: bool = True,
        on_frame: Callable[[NDArray[np.int16], float], None] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.keep = keep
        self.on_frame = on_frame
        self._stream = RoutedAudioStream(
            track, sample_rate=sample_rate, num_channels=1, frame_size_ms=10
        )
        self._chunks: list[NDArray[np.int16]] = []
        self.samples = 0
        self.voiced = 0  # samples received that are not silence
        self.last_heard_at: float | None = None  # the last frame louder than HEARD_LEVEL
        self._marks: list[tuple[int, float]] = []  # (samples received, time) per frame
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._task = asyncio.get_running_loop().create_task(self._run(), name="listener")

    async def _run(self) -> None:
        async for event in self._stream:
            frame = np.frombuffer(event.frame.data, dtype=np.int16)
            if self.on_frame is not None:
                self.on_frame(frame, time.monotonic())
            if self.keep:
                self._chunks.append(frame.copy())
            self.samples += frame.size
            self.voiced += int(np.count_nonzero(frame))
            if frame.size and int(np.abs(frame).max()) > HEARD_LEVEL:
                self.last_heard_at = time.monotonic()
            if len(self._marks) < self.MAX_MARKS:
                self._marks.append((self.samples, time.monotonic()))
            for condition, future in list(self._waiters):
                if not future.done() and condition():
                    future.set_result(None)

    def heard_within(self, now: float, seconds: float) -> bool:
        """Whether something louder than silence arrived in the last ``seconds``."""
        return self.last_heard_at is not None and now - self.last_heard_at <= seconds

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds after a received frame (event-driven, no polling)."""
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, future))
        try:
            await future
        finally:
            self._waiters.remove((condition, future))

    def position_at(self, t: float) -> int:
        """How many samples had been received at time ``t`` (interpolated within a frame)."""
        previous_samples, previous_time = 0, self._marks[0][1] if self._marks else t
        for samples, at in self._marks:
            if at >= t:
                span = samples - previous_samples
                if at <= previous_time:
                    return samples
                fraction = (t - previous_time) / (at - previous_time)
                return previous_samples + int(round(span * min(max(fraction, 0.0), 1.0)))
            previous_samples, previous_time = samples, at
        return self.samples

    def audio(self) -> NDArray[np.int16]:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await self._stream.aclose()
