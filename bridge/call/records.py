"""What happened in one call: counts, latencies, truncations, tool calls, the conversation.

The ``bridge try --json`` summary, the session-end log record and the benchmark all read it.
Per-turn figures are kept whole; per-frame latencies (100 a second) are kept in fixed-size
windows of the most recent 60,000 (10 minutes), so an hours-long call holds a constant few
hundred kilobytes of them and percentiles are exact over that window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sessions.usage import Usage


class Window:
    """The most recent ``capacity`` values, in a preallocated array (no per-value objects)."""

    def __init__(self, capacity: int = 60_000) -> None:
        self._values = np.zeros(capacity, dtype=np.float64)
        self._count = 0

    def append(self, value: float) -> None:
        self._values[self._count % self._values.size] = value
        self._count += 1

    def __len__(self) -> int:
        return min(self._count, self._values.size)

    def __iter__(self) -> Iterator[float]:
        return iter(self.array().tolist())

    def __iadd__(self, values: Iterable[float]) -> Window:
        for value in values:
            self.append(value)
        return self

    def array(self) -> NDArray[np.float64]:
        """The values held, oldest first."""
        size = self._values.size
        if self._count <= size:
            return self._values[: self._count].copy()
        start = self._count % size
        return np.concatenate((self._values[start:], self._values[:start]))


@dataclass(frozen=True, slots=True)
class TruncationRecord:
    item_id: str
    audio_end_ms: int  # what was sent to the server (0 = the item was deleted)
    played_ms: int  # audio of the item that left the source
    action: str  # truncate | delete | skip


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One function call of the model: never its arguments or output (those are in ``lines``)."""

    tool: str  # the name the model called (declared or not)
    outcome: str  # ok | invalid_arguments | error | timeout | oversize | cancelled
    ms: float  # arguments received to the output sent (or the cancellation)
    held: bool = False  # a holding line was asked for while it ran


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the conversation, seconds from the start of the call."""

    at: float
    who: str  # "caller" | "agent" | "system"
    text: str


@dataclass(slots=True)
class CallRecord:
    started_at: float
    ended_at: float | None = None
    end_reason: str = ""
    failed: bool = False
    responses: int = 0
    turns: int = 0
    interruptions: int = 0
    truncations: list[TruncationRecord] = field(default_factory=list)
    voice_to_voice_ms: list[float] = field(default_factory=list)
    response_latency_ms: list[float] = field(default_factory=list)
    barge_in_stop_ms: list[float] = field(default_factory=list)
    out_latency_ms: Window = field(default_factory=Window)
    in_waiting_ms: Window = field(default_factory=Window)
    in_processing_ms: Window = field(default_factory=Window)
    errors: list[dict[str, str]] = field(default_factory=list)
    benign_errors: int = 0
    reconnects: int = 0
    rollovers: int = 0
    dropped_frames: int = 0
    underruns: int = 0
    input_seconds: float = 0.0
    output_seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    lines: list[Line] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)

    def tool_counts(self) -> dict[str, dict[str, int]]:
        """Tool calls by tool, then outcome (the ``call.ended`` record's ``tools``)."""
        counts: dict[str, dict[str, int]] = {}
        for call in self.tool_calls:
            by_outcome = counts.setdefault(call.tool, {})
            by_outcome[call.outcome] = by_outcome.get(call.outcome, 0) + 1
        return counts

    def say(self, at: float, who: str, text: str) -> None:
        self.lines.append(Line(round(at - self.started_at, 3), who, text))

    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary of ``bridge try`` (and the session-end log figures)."""
        duration = (self.ended_at or self.started_at) - self.started_at
        return {
            "duration_s": round(duration, 3),
            "end_reason": self.end_reason,
            "failed": self.failed,
            "responses": self.responses,
            "turns": self.turns,
            "interruptions": self.interruptions,
            "truncations": [
                {
                    "item_id": t.item_id,
                    "audio_end_ms": t.audio_end_ms,
                    "played_ms": t.played_ms,
                    "action": t.action,
                }
                for t in self.truncations
            ],
            "voice_to_voice_ms": [round(x, 1) for x in self.voice_to_voice_ms],
            "response_latency_ms": [round(x, 1) for x in self.response_latency_ms],
            "barge_in_stop_ms": [round(x, 3) for x in self.barge_in_stop_ms],
            "out_latency_ms": percentiles(self.out_latency_ms),
            "in_latency_ms": {
                "waiting": percentiles(self.in_waiting_ms),
                "processing": percentiles(self.in_processing_ms),
                "total": percentiles(self.in_waiting_ms.array() + self.in_processing_ms.array()),
            },
            "input_seconds": round(self.input_seconds, 3),
            "output_seconds": round(self.output_seconds, 3),
            "dropped_frames": self.dropped_frames,
            "underruns": self.underruns,
            "reconnects": self.reconnects,
            "rollovers": self.rollovers,
            "errors": list(self.errors),
            "benign_errors": self.benign_errors,
            "tokens": self.usage.by_kind(),
            "cost_usd": round(self.cost_usd, 6),
            "tool_calls": [
                {"tool": t.tool, "outcome": t.outcome, "ms": round(t.ms, 1), "held": t.held}
                for t in self.tool_calls
            ],
            "conversation": [{"at": x.at, "who": x.who, "text": x.text} for x in self.lines],
        }


def percentiles(values: Iterable[float] | NDArray[np.float64]) -> dict[str, float | None]:
    """p50/p99/max of ``values`` in the same unit (``None`` when empty)."""
    if isinstance(values, Window):
        values = values.array()
    array = np.asarray(
        list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64
    )
    if not array.size:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "max": round(float(array.max()), 3),
        "n": int(array.size),
    }
