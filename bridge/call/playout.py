"""Agent audio into the room, with exact accounting of what left the source.

The model sends a reply faster than real time. At most ``queue_ms`` (≤ 100 ms) of it waits in
the native ``rtc.AudioSource`` queue; the rest waits here, in a bounded buffer, and a pump
task moves it into the source frame by frame as the source makes room (``capture_frame``
returns when there is room, so the source itself paces the pump).

Accounting: every sample handed to the source is recorded against its assistant item. The
samples that have *left* the source are those captured minus those still queued
(``AudioSource.queued_duration``, which the SDK derives from capture times; on the loopback
it matches what a listener receives to within a frame). Per item: played = captured stream
position reached minus the item's start, clamped to the item's length.

Barge-in (:meth:`interrupt`) clears the native queue synchronously, drops the buffer, records
how much of each item was played, and refuses further audio for those items.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from bridge.call.probe import CallProbe, NoProbe

SAMPLE_RATE = 24_000


@dataclass(slots=True)
class _Segment:
    """A stretch of the captured stream that belongs to one item."""

    item_id: str
    start: int  # captured-stream sample index of the item's first sample
    length: int = 0  # samples of it captured so far


@dataclass(frozen=True, slots=True)
class PlayoutStats:
    captured_samples: int
    dropped_samples: int
    underruns: int
    buffered_samples: int


class Playout:
    """Feeds an ``rtc.AudioSource`` from a bounded buffer and accounts for every sample."""

    def __init__(
        self,
        source: rtc.AudioSource,
        *,
        frame_ms: int = 20,
        max_buffer_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        probe: CallProbe | None = None,
    ) -> None:
        if source.sample_rate != SAMPLE_RATE or source.num_channels != 1:
            raise ValueError("the agent source must be 24 kHz mono")
        self.source = source
        self.clock = clock
        self.probe = probe or NoProbe()
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        self.max_buffer = int(max_buffer_s * SAMPLE_RATE)
        self._buffer: deque[tuple[str, NDArray[np.int16], float]] = deque()
        self._buffered = 0
        self._head_offset = 0  # samples of the buffer's first chunk already taken
        self._segments: deque[_Segment] = deque(maxlen=64)
        self._open_items: set[str] = set()  # items that may still receive audio
        self._refused: set[str] = set()  # interrupted items: their late audio is dropped
        self._captured = 0
        self._dropped = 0
        self._underruns = 0
        self._wake = asyncio.Event()
        self._active = False  # audio is in the source or on its way
        self._last_return = 0.0
        #: Called when the first frame of an item enters an idle source (agent starts speaking).
        self.on_item_started: Callable[[str], None] = lambda _item: None
        #: Called once everything captured has played and nothing more is expected.
        self.on_idle: Callable[[], None] = lambda: None
        #: Called per frame with (seconds from delta received to captured, beyond any wait
        #: for the source to make room), for latency accounting.
        self.on_captured: Callable[[float], None] | None = None

    # ------------------------------------------------------------------ producer side

    def begin_item(self, item_id: str) -> None:
        """Audio for ``item_id`` is coming (its response started)."""
        if item_id not in self._refused:
            self._open_items.add(item_id)

    def push(
        self, item_id: str, pcm: bytes | NDArray[np.int16], received: float | None = None
    ) -> None:
        """Queue PCM16 for ``item_id`` (``received``: when its delta was read off the socket).

        Audio of interrupted items is dropped silently.
        """
        if item_id in self._refused:
            return
        samples = pcm if isinstance(pcm, np.ndarray) else np.frombuffer(pcm, dtype=np.int16)
        if not samples.size:
            return
        room = self.max_buffer - self._buffered
        if samples.size > room:
            self._dropped += samples.size - max(room, 0)
            samples = samples[: max(room, 0)]
            if not samples.size:
                return
        self._open_items.add(item_id)
        self._buffer.append((item_id, samples, self.clock() if received is None else received))
        self._buffered += samples.size
        self._wake.set()

    def end_item(self, item_id: str) -> None:
        """No more audio will come for ``item_id``."""
        self._open_items.discard(item_id)
        self._wake.set()

    # ------------------------------------------------------------------ barge-in

    def interrupt(self) -> dict[str, int]:
        """Stop at once: clear the source queue and the buffer.

        Returns, for every item that had audio captured or buffered and was not completely
        played, the samples of it that left the source. Later audio for those items is
        refused.
        """
        played_total = self.played_position()
        self.source.clear_queue()
        self.probe.queue_cleared(self.clock())
        self._captured = played_total  # what was queued never left: forget it
        cut: dict[str, int] = {}
        for segment in self._segments:
            played = min(max(played_total - segment.start, 0), segment.length)
            if played < segment.length:
                cut[segment.item_id] = played
                segment.length = played
        for item_id, _samples, _t in self._buffer:
            cut.setdefault(item_id, self.played_samples(item_id))
        for item_id in self._open_items:
            cut.setdefault(item_id, self.played_samples(item_id))
        self._refused.update(cut)
        self._buffer.clear()
        self._buffered = 0
        self._head_offset = 0
        self._open_items.clear()
        self._wake.set()
        return cut

    # ------------------------------------------------------------------ accounting

    def played_position(self) -> int:
        """Samples of the captured stream that have left the source."""
        queued = round(self.source.queued_duration * SAMPLE_RATE)
        return max(self._captured - queued, 0)

    def played_samples(self, item_id: str) -> int:
        """Samples of ``item_id`` that have left the source so far."""
        position = self.played_position()
        for segment in reversed(self._segments):
            if segment.item_id == item_id:
                return min(max(position - segment.start, 0), segment.length)
        return 0

    def captured_samples(self, item_id: str) -> int:
        for segment in reversed(self._segments):
            if segment.item_id == item_id:
                return segment.length
        return 0

    @property
    def speaking(self) -> bool:
        return self._active

    @property
    def stats(self) -> PlayoutStats:
        return PlayoutStats(self._captured, self._dropped, self._underruns, self._buffered)

    # ------------------------------------------------------------------ the pump

    def _take_frame(self) -> tuple[str, NDArray[np.int16], float]:
        """Up to one frame from the buffer's head, never spanning two items."""
        item_id, samples, received = self._buffer[0]
        start = self._head_offset
        end = min(start + self.frame_samples, samples.size)
        frame = samples[start:end]
        if end == samples.size:
            self._buffer.popleft()
            self._head_offset = 0
            # fill the frame from following chunks of the same item
            while (
                frame.size < self.frame_samples and self._buffer and self._buffer[0][0] == item_id
            ):
                _, more, received = self._buffer[0]
                need = self.frame_samples - frame.size
                frame = np.concatenate((frame, more[:need]))
                if need >= more.size:
                    self._buffer.popleft()
                else:
                    self._head_offset = need
        else:
            self._head_offset = end
        self._buffered -= frame.size
        return item_id, frame, received

    def _record(self, item_id: str, n: int) -> bool:
        """Account ``n`` samples of ``item_id`` as captured; True if the item just started."""
        last = self._segments[-1] if self._segments else None
        started = last is None or last.item_id != item_id
        if started:
            self._segments.append(_Segment(item_id, self._captured))
            last = self._segments[-1]
        assert last is not None
        last.length += n
        self._captured += n
        return started

    async def run(self) -> None:
        """Move audio from the buffer into the source until cancelled."""
        while True:
            if not self._buffer:
                if self._active:
                    await self._wait_idle()
                else:
                    self._wake.clear()
                    await self._wake.wait()
                continue
            item_id, frame, received = self._take_frame()
            starting = not self._active or self._segments[-1].item_id != item_id
            self._active = True
            self._record(item_id, frame.size)
            if starting:
                self.on_item_started(item_id)
            now = self.clock()
            self.probe.source_captured(frame.size, now, self._last_return)
            if self.on_captured is not None:
                self.on_captured(now - max(received, self._last_return))
            await self.source.capture_frame(
                rtc.AudioFrame(frame.tobytes(), SAMPLE_RATE, 1, frame.size)
            )
            self._last_return = self.clock()

    async def _wait_idle(self) -> None:
        """The buffer ran dry: either more audio comes, or the source drains and we go idle."""
        if self._open_items:
            # A reply is still streaming in: waiting for it with a dry buffer is an underrun
            # only if the source also runs dry before it comes.
            remaining = self.source.queued_duration
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining + 0.005):
                    await self._wake.wait()
                    return
            if self._open_items and not self._buffer:
                self._underruns += 1
                self._wake.clear()
                await self._wake.wait()
            return
        remaining = self.source.queued_duration
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await self._wake.wait()
                return
        if not self._buffer and not self._open_items:
            self._active = False
            self.on_idle()
