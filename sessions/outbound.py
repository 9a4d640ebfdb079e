"""The one bounded outbound queue of a connection.

Frames leave in the order they were queued. Audio appends may be dropped by policy when the
socket cannot keep up: an append that has waited longer than ``max_audio_age_s`` (the socket
is not draining), or any beyond ``max_audio`` queued appends (memory), is dropped oldest
first and counted (in frames and samples), so the caller's latest speech goes first. A burst
queued at once (a backlog re-sent after a reconnect) is not "late" and is kept. Control frames
(``session.update``, ``response.cancel``, truncations...) are never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from sessions.protocol import OutboundFrame


class OutboundQueue:
    def __init__(
        self,
        max_audio: int,
        max_audio_age_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_audio < 1:
            raise ValueError("max_audio must be at least 1")
        self.max_audio = max_audio
        self.max_audio_age_s = max_audio_age_s
        self.clock = clock
        self._frames: deque[OutboundFrame] = deque()
        self._audio_times: deque[float] = deque()  # enqueue time of each queued append
        self._ready = asyncio.Event()
        self.dropped_frames = 0
        self.dropped_samples = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def queued_audio(self) -> int:
        """Audio appends waiting to be sent."""
        return len(self._audio_times)

    def put(self, frame: OutboundFrame) -> None:
        self._frames.append(frame)
        if frame.samples:
            now = self.clock()
            self._audio_times.append(now)
            times = self._audio_times
            while len(times) > self.max_audio or now - times[0] > self.max_audio_age_s:
                self._drop_oldest_audio()
        self._ready.set()

    def _drop_oldest_audio(self) -> None:
        for index, frame in enumerate(self._frames):
            if frame.samples:
                del self._frames[index]
                self._audio_times.popleft()
                self.dropped_frames += 1
                self.dropped_samples += frame.samples
                return

    def get_nowait(self) -> OutboundFrame | None:
        if not self._frames:
            return None
        frame = self._frames.popleft()
        if frame.samples:
            self._audio_times.popleft()
        if not self._frames:
            self._ready.clear()
        return frame

    async def get(self) -> OutboundFrame:
        while True:
            frame = self.get_nowait()
            if frame is not None:
                return frame
            await self._ready.wait()

    def take_all(self) -> list[OutboundFrame]:
        """Remove and return every queued frame (e.g. to resend them on a new socket)."""
        frames = list(self._frames)
        self._frames.clear()
        self._audio_times.clear()
        self._ready.clear()
        return frames
