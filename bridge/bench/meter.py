"""The benchmark's probes: what each engine did, measured the same way for both.

Where the truth is in the room, it is taken from the room: :class:`AgentAudioMeter` reads the
agent's track as a listener receives it and finds the replies in it (non-zero samples; the
caller's noise floor makes every echoed reply non-zero throughout), the gaps inside a reply
(underruns) and how much of a cut reply was actually heard. Where the moment of interest is
inside the engine (a frame received from the room, bytes written to the socket, a delta
read off it, a frame captured into the source, the source cleared), small hooks feed
:class:`InLatencyProbe`, :class:`OutLatencyProbe` and :class:`BargeInProbe`; the hooks differ
per engine, the definitions do not.

Pure Python and numpy, no clock of their own: every call carries its time.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bridge.call.records import Window

RATE = 24_000
SUBFRAME = RATE // 100  # 10 ms at 24 kHz


@dataclass(slots=True)
class Run:
    """A stretch of agent audio with no 10 ms of exact silence in it."""

    start: int  # listener sample index of its first non-zero sample
    end: int  # one past its last non-zero sample
    started_at: float  # arrival of the frame holding ``start``
    ended_at: float  # arrival of the frame holding ``end - 1``


@dataclass(frozen=True, slots=True)
class Reply:
    """Runs less than ``merge_gap_s`` apart: one reply; the gaps inside it are underruns."""

    start: int
    end: int
    started_at: float
    ended_at: float
    gaps: int

    @property
    def heard_ms(self) -> float:
        return (self.end - self.start) * 1000 / RATE


class AgentAudioMeter:
    """Finds the agent's replies in what a listener receives, frame by frame."""

    GAP = SUBFRAME  # exact zeros that end a run

    def __init__(self, threshold: int = 0, gap_ms: int = 10) -> None:
        self.threshold = threshold  # |sample| above it is heard (0: any non-zero sample)
        self.gap = RATE * gap_ms // 1000  # silence that long ends a run (a gap in a reply)
        self.samples = 0
        self.runs: list[Run] = []
        self._open: Run | None = None
        self._last_at = 0.0
        self._last_voiced_at: float | None = None

    def push(self, frame: NDArray[np.int16], at: float) -> None:
        base = self.samples
        self._last_at = at
        nonzero = np.flatnonzero(np.abs(frame) > self.threshold if self.threshold else frame)
        run = self._open
        if nonzero.size:
            first, last = base + int(nonzero[0]), base + int(nonzero[-1]) + 1
            if run is not None and first - run.end >= self.gap:
                run = self._open = None
            if run is None:
                run = self._open = Run(first, last, at, at)
                self.runs.append(run)
            run.end, run.ended_at = last, at
            self._last_voiced_at = at
        self.samples = base + frame.size
        if run is not None and self.samples - run.end >= self.gap:
            self._open = None

    @property
    def speaking(self) -> bool:
        return self._open is not None

    @property
    def quiet_s(self) -> float:
        if self._open is not None:
            return 0.0
        if self._last_voiced_at is None:
            return float("inf")
        return self._last_at - self._last_voiced_at

    def replies(self, merge_gap_s: float = 0.3) -> list[Reply]:
        """Runs merged into replies; a gap shorter than ``merge_gap_s`` is an underrun."""
        merge = int(merge_gap_s * RATE)
        out: list[Reply] = []
        for run in self.runs:
            if out and run.start - out[-1].end < merge:
                last = out[-1]
                out[-1] = Reply(last.start, run.end, last.started_at, run.ended_at, last.gaps + 1)
            else:
                out.append(Reply(run.start, run.end, run.started_at, run.ended_at, 0))
        return out


class InLatencyProbe:
    """Caller frame received from the room → the append carrying its last sample on the socket.

    ``received`` gives a room frame's end as a position in the appended 24 kHz stream; a frame
    longer than 10 ms (the plugin reads 50 ms frames) is split into the 10 ms frames it
    gathered, each dated when a 10 ms reader would have had it, so the wait for the rest of a
    long frame counts as the latency it is. ``sent`` gives the appended total after each
    append written to the socket.
    """

    def __init__(self, max_pending: int = 4000) -> None:
        self.values = Window()  # ms
        self._pending: deque[tuple[float, float]] = deque(maxlen=max_pending)
        self.received_total = 0.0
        self.sent_total = 0

    def received(self, end_position: float, at: float, frame_ms: int = 10) -> None:
        subframes = max(frame_ms // 10, 1)
        for j in range(subframes):
            back = subframes - 1 - j
            self._pending.append((end_position - back * SUBFRAME, at - back * 0.010))
        self.received_total = end_position

    def sent(self, total: int, at: float) -> None:
        self.sent_total = total
        reached = total + 0.5
        pending = self._pending
        while pending and pending[0][0] <= reached:
            _, arrived = pending.popleft()
            self.values.append(max(at - arrived, 0.0) * 1000)

    def dropped_frames(self, chunk_samples: int) -> int:
        """10 ms frames received that never reached the socket (beyond one unsent chunk)."""
        missing = self.received_total - self.sent_total - chunk_samples
        return max(int(missing // SUBFRAME), 0)


@dataclass(slots=True)
class _Item:
    ends: list[int] = field(default_factory=list)  # cumulative samples after each delta
    times: list[float] = field(default_factory=list)


class OutLatencyProbe:
    """Audio delta read off the socket → its samples captured into the source.

    Counted per captured frame, beyond any wait for the source to make room (from the later of
    the delta's arrival and the previous capture's return), as both engines' sources pace them.
    A playback segment starts at an item's first frame; its frames are matched to that item's
    deltas by sample count.
    """

    def __init__(self, keep_items: int = 8) -> None:
        self.values = Window()  # ms
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._keep = keep_items
        self._current: _Item | None = None
        self._position = 0

    def delta(self, item_id: str, samples: int, at: float) -> None:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
            while len(self._items) > self._keep:
                self._items.popitem(last=False)
        item.ends.append((item.ends[-1] if item.ends else 0) + samples)
        item.times.append(at)

    def playback_started(self, item_id: str | None = None) -> None:
        """A segment starts: of ``item_id``, or of the item whose deltas came last."""
        if item_id is None:
            item_id = next(reversed(self._items), None)
        self._current = self._items.get(item_id) if item_id is not None else None
        self._position = 0

    def captured(self, samples: int, called: float, previous_return: float) -> None:
        item = self._current
        if item is None or not item.ends:
            return
        self._position += samples
        index = min(bisect.bisect_left(item.ends, self._position), len(item.ends) - 1)
        arrived = item.times[index]
        self.values.append(max(called - max(arrived, previous_return), 0.0) * 1000)


class BargeInProbe:
    """``speech_started`` read off the socket while the agent is heard → the source cleared."""

    def __init__(self, timeout_s: float = 2.0) -> None:
        self.stops: list[float] = []  # ms
        self.started: list[float] = []  # when each counted barge-in's event arrived
        self.missed = 0  # the agent was heard, but its source was not cleared in time
        self._pending: float | None = None
        self._timeout = timeout_s

    def speech_started(self, at: float, agent_audible: bool) -> None:
        self._expire(at)
        if agent_audible and self._pending is None:
            self._pending = at
            self.started.append(at)

    def cleared(self, at: float) -> None:
        self._expire(at)
        if self._pending is not None:
            self.stops.append((at - self._pending) * 1000)
            self._pending = None

    def finish(self, at: float) -> None:
        self._expire(at)

    def _expire(self, now: float) -> None:
        if self._pending is not None and now - self._pending > self._timeout:
            self.missed += 1
            self._pending = None


@dataclass(frozen=True, slots=True)
class Truncation:
    at: float  # when the engine sent it
    cause_at: float  # the speech_started that caused it
    item_id: str
    audio_end_ms: int  # 0: the item was deleted


def truncation_errors(truncations: list[Truncation], replies: list[Reply]) -> list[float]:
    """|``audio_end_ms`` − the audio of that reply a listener actually received|, in ms.

    A truncation belongs to the reply that was being heard when its barge-in arrived; when
    none was (the item had not started playing), nothing was heard and the right value is 0.
    """
    starts = [r.started_at for r in replies]
    errors: list[float] = []
    for t in truncations:
        index = bisect.bisect_right(starts, max(t.at, t.cause_at) + 0.05) - 1
        heard = 0.0
        if index >= 0 and replies[index].ended_at >= t.cause_at - 0.1:
            heard = replies[index].heard_ms
        errors.append(abs(t.audio_end_ms - heard))
    return errors


def barge_in_silences(started: list[float], replies: list[Reply]) -> list[float]:
    """For each barge-in, ms from its ``speech_started`` to the last agent audio heard."""
    out: list[float] = []
    for at in started:
        playing = [r for r in replies if r.started_at <= at + 0.05 and r.ended_at >= at - 0.1]
        if playing:
            out.append(max(playing[-1].ended_at - at, 0.0) * 1000)
    return out


def voice_to_voice(stops: list[float], starts: list[float], replies: list[Reply]) -> list[float]:
    """``speech_stopped`` → the first agent audio heard after it, in ms.

    Skipped when the caller spoke again (``speech_started``) before any reply was heard.
    """
    reply_starts = [r.started_at for r in replies]
    out: list[float] = []
    for at in stops:
        index = bisect.bisect_left(reply_starts, at)
        if index >= len(reply_starts):
            continue
        heard = reply_starts[index]
        next_start = bisect.bisect_right(starts, at)
        if next_start < len(starts) and starts[next_start] < heard:
            continue
        out.append((heard - at) * 1000)
    return out
