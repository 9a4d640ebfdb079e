"""Caller frame received → the append carrying its last sample written to the socket.

Each frame from the room is noted with the position its last sample will occupy in the
appended 24 kHz stream (samples appended so far plus what the resampler still withholds) and
its arrival time. Each append written to the socket reports the position it reaches. A frame
is done when an append reaches its position; its latency splits in two:

- **waiting**: from its arrival to the arrival of the later frame that completed the chunk
  carrying its last sample (resampler delay plus chunk filling: time spent waiting for input
  that had not happened yet);
- **processing**: from that completing frame's arrival to the append leaving on the socket
  (resampling, chunking, encoding, queueing, the event loop and the write: our own cost).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable


class InputLatency:
    def __init__(self, record: Callable[[float, float], None], max_pending: int = 2000) -> None:
        self._record = record
        # (position of its last sample, samples appended once it was, arrival time)
        self._pending: deque[tuple[float, int, float]] = deque(maxlen=max_pending)
        self._sent = 0

    def frame(self, position: float, appended: int, received: float) -> None:
        """A frame arrived at ``received``; after it, ``appended`` samples had been appended
        and its own last sample will land at ``position`` (≥ ``appended``: the resampler
        withholds a few)."""
        self._pending.append((position, appended, received))

    def sent(self, samples: int, now: float) -> None:
        """An append of ``samples`` samples was written to the socket at ``now``."""
        self._sent += samples
        reached = self._sent + 0.5  # positions are fractional estimates: round to the sample
        pending = self._pending
        if not pending or pending[0][0] > reached:
            return
        # The frame whose arrival let the appended stream reach this append's end.
        completing = next((t for _, a, t in pending if a >= self._sent), pending[-1][2])
        while pending and pending[0][0] <= reached:
            _, _, received = pending.popleft()
            self._record(max(completing - received, 0.0), max(now - completing, 0.0))

    def reset(self, appended: int) -> None:
        """A new socket starts from ``appended``: forget frames counted on the old one."""
        self._pending.clear()
        self._sent = appended


class CallerTimeline:
    """When each stretch of the appended caller stream arrived from the room.

    Maps a sample of the appended 24 kHz stream (e.g. the server's ``audio_end_ms``) back to
    the wall-clock time its audio arrived, for voice-to-voice latency. Keeps the last
    ``horizon`` entries (one per room frame: 60 s at 10 ms frames by default).
    """

    def __init__(self, horizon: int = 6000) -> None:
        self._ends: deque[int] = deque(maxlen=horizon)
        self._times: deque[float] = deque(maxlen=horizon)

    def note(self, appended_end: int, received: float) -> None:
        self._ends.append(appended_end)
        self._times.append(received)

    def time_of(self, sample: int) -> float | None:
        """Arrival time of the frame that carried ``sample`` (None if too old or unknown)."""
        ends = self._ends
        if not ends or sample > ends[-1] or sample < ends[0] - 480:
            return None
        index = bisect.bisect_left(ends, sample)
        return self._times[min(index, len(self._times) - 1)]
