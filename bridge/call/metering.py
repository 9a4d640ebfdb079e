"""A call's running counters, brought to Prometheus while the call runs.

Audio seconds, tokens, cost and dropped frames used to reach the metrics only when a call
ended: a 30-minute call showed nothing for 30 minutes, and a worker that crashed lost it all.
:class:`CallMeter` keeps what it has already reported of one call and adds the difference
each time :meth:`CallMeter.report` is called. :class:`~bridge.call.call.Call` calls it at
each ``response.done`` (tokens and cost move then), at each whole second of caller audio
(a float comparison per frame, no per-frame metric update), when the agent's reply has
played out, and once more at the end: no count is ever added twice and none is lost by a
call that ends between two reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.metrics import BridgeMetrics
from sessions.usage import Usage

DROPPED_OUT_SAMPLES_PER_FRAME = 480  # 20 ms at 24 kHz: how the playout's drops are counted


@dataclass(slots=True)
class Totals:
    """A call's counts so far (what the call knows), or what was reported of them."""

    input_seconds: float = 0.0
    output_seconds: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    dropped_in: int = 0  # caller frames the socket could not take
    dropped_out: int = 0  # agent 20 ms frames beyond the playout buffer


@dataclass(slots=True)
class CallMeter:
    """The part of one call's totals already added to ``metrics`` (model: the cost label)."""

    metrics: BridgeMetrics
    model: str
    reported: Totals = field(default_factory=Totals)

    def report(
        self,
        *,
        input_seconds: float,
        output_seconds: float,
        usage: Usage,
        cost_usd: float,
        dropped_in: int,
        dropped_out_samples: int,
    ) -> None:
        """Add what grew since the last report (totals only grow; a shrink is ignored)."""
        m, done = self.metrics, self.reported
        if input_seconds > done.input_seconds:
            m.audio_seconds.labels("in").inc(input_seconds - done.input_seconds)
            done.input_seconds = input_seconds
        if output_seconds > done.output_seconds:
            m.audio_seconds.labels("out").inc(output_seconds - done.output_seconds)
            done.output_seconds = output_seconds
        for kind, count in usage.by_kind().items():
            before = done.tokens.get(kind, 0)
            if count > before:
                m.tokens.labels(kind).inc(count - before)
                done.tokens[kind] = count
        if cost_usd > done.cost_usd:
            m.cost.labels(self.model).inc(cost_usd - done.cost_usd)
            done.cost_usd = cost_usd
        if dropped_in > done.dropped_in:
            m.frames_dropped.labels("in").inc(dropped_in - done.dropped_in)
            done.dropped_in = dropped_in
        dropped_out = dropped_out_samples // DROPPED_OUT_SAMPLES_PER_FRAME
        if dropped_out > done.dropped_out:
            m.frames_dropped.labels("out").inc(dropped_out - done.dropped_out)
            done.dropped_out = dropped_out
