"""Event-loop stalls and garbage-collection pauses, as a call on that loop would feel them.

:class:`LoopMonitor` schedules a callback every 10 ms on a loop and records how late each
one runs: how long the loop was busy with something else. There is one per loop, shared by
the calls on it (ours all share the media loop; the plugin's each have their own).
:class:`GcMonitor` times every collection of the process. Both keep time-stamped records so
that each call reports those of its own steady state, not the start-up's.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar


class LoopMonitor:
    _monitors: ClassVar[dict[asyncio.AbstractEventLoop, LoopMonitor]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.01) -> None:
        self.interval = interval
        self.records: deque[tuple[float, float]] = deque(maxlen=200_000)  # (time, late ms)
        self._loop = loop
        self._due = 0.0
        self._schedule()

    @classmethod
    def on_current_loop(cls) -> LoopMonitor:
        """The running loop's monitor (started on first use)."""
        loop = asyncio.get_running_loop()
        with cls._lock:
            monitor = cls._monitors.get(loop)
            if monitor is None:
                monitor = cls._monitors[loop] = cls(loop)
            return monitor

    def _schedule(self) -> None:
        self._due = time.monotonic() + self.interval
        self._loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.records.append((now, max(now - self._due, 0.0) * 1000))
        self._schedule()

    def lateness(self, since: float, until: float) -> list[float]:
        """How late each tick within ``[since, until]`` ran, in ms."""
        return [late for at, late in list(self.records) if since <= at <= until]


@dataclass(slots=True)
class GcFigures:
    collections: int = 0
    full_collections: int = 0
    max_pause_ms: float = 0.0
    max_full_pause_ms: float = 0.0


class GcMonitor:
    """Times this process's collections (install once; idempotent).

    Keeps the most recent collections as ``(time, pause_ms, generation)`` so that each call
    can report those of its own steady state (:meth:`figures`), not the start-up's.
    """

    _installed: GcMonitor | None = None
    _lock = threading.Lock()

    def __init__(self, keep: int = 20_000) -> None:
        self.events: deque[tuple[float, float, int]] = deque(maxlen=keep)
        self._started: dict[int, float] = {}

    @classmethod
    def install(cls) -> GcMonitor:
        with cls._lock:
            if cls._installed is None:
                monitor = cls()
                gc.callbacks.append(monitor._callback)
                cls._installed = monitor
            return cls._installed

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._started[thread] = time.perf_counter()
            return
        began = self._started.pop(thread, None)
        if began is None:
            return
        pause = (time.perf_counter() - began) * 1000
        self.events.append((time.monotonic(), pause, int(info.get("generation", 0))))

    def figures(self, since: float, until: float) -> GcFigures:
        """The collections that ended within ``[since, until]``."""
        figures = GcFigures()
        for at, pause, generation in list(self.events):
            if since <= at <= until:
                figures.collections += 1
                figures.max_pause_ms = max(figures.max_pause_ms, round(pause, 3))
                if generation == 2:
                    figures.full_collections += 1
                    figures.max_full_pause_ms = max(figures.max_full_pause_ms, round(pause, 3))
        return figures
