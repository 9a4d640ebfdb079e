"""Prometheus metrics of a bridge process (``prometheus_client``; low-cardinality labels only).

No label ever carries a room, participant or session name: error codes are limited to the
known ones (others count as ``other``), directions and token kinds are fixed sets, and a tool
label is a name from the profiles file (a function the model made up counts as
``(undeclared)``, which no declared tool can be called).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import get_args

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from sessions.continuity import Reason
from sessions.error_codes import ERROR_CODES
from sessions.usage import Usage

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
STOP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
KNOWN_CODES = frozenset(ERROR_CODES) | {"connect", "handshake", "timeout", "malformed"}
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
#: How a tool call ended: ``ok``, one of the error reasons, or ``cancelled`` (barge-in).
TOOL_ERRORS = ("invalid_arguments", "error", "timeout", "oversize")
TOOL_OUTCOMES = ("ok", *TOOL_ERRORS, "cancelled")
UNDECLARED_TOOL = "(undeclared)"
#: How a call ended: ``drained`` = still running when the worker's drain limit came (the
#: caller was told and the call closed cleanly, but it did not end on its own).
OUTCOMES = ("ok", "failed", "drained")
DIRECTIONS = ("in", "out")
TOKEN_KINDS = tuple(f.name for f in fields(Usage))
RECONNECT_REASONS = tuple(r for r in get_args(Reason) if r != "start")


class BridgeMetrics:
    """The bridge's metrics on one registry (the process default unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = reg = registry if registry is not None else REGISTRY
        self.sessions_active = Gauge(
            "bridge_sessions_active", "Calls bridged right now.", registry=reg
        )
        self.sessions = Counter(
            "bridge_sessions_total",
            "Calls ended, by outcome (ok, failed, drained: cut by the worker's drain limit).",
            ["outcome"],
            registry=reg,
        )
        self.max_sessions = Gauge(
            "bridge_max_sessions",
            "The calls this worker takes at most (lowered when its CPU is not pinned).",
            registry=reg,
        )
        self.cpu_pinned = Gauge(
            "bridge_cpu_pinned",
            "1 when the worker has whole CPUs of its own (its affinity is no wider than its"
            " CPU quota: the static CPU manager policy or taskset), else 0.",
            registry=reg,
        )
        self.draining = Gauge(
            "bridge_draining",
            "1 from the first SIGTERM on (the worker takes no new call).",
            registry=reg,
        )
        self.resumed = Counter(
            "bridge_calls_resumed_total",
            "Calls this worker picked up after the worker that ran them vanished.",
            registry=reg,
        )
        self.rescues = Counter(
            "bridge_rescues_total",
            "Orphaned calls (their worker stopped beating) this worker found, by what it did:"
            " redispatched, or abandoned (nobody left in the room, or the dispatch failed).",
            ["action"],
            registry=reg,
        )
        self.voice_to_voice = Histogram(
            "bridge_voice_to_voice_seconds",
            "Caller's speech end to the first agent audio leaving the source.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.barge_in_stop = Histogram(
            "bridge_barge_in_stop_seconds",
            "speech_started received to the agent's audio source cleared.",
            buckets=STOP_BUCKETS,
            registry=reg,
        )
        self.frames_dropped = Counter(
            "bridge_frames_dropped_total",
            "Audio frames dropped by policy (in: caller audio the socket could not take;"
            " out: agent audio beyond the playout buffer).",
            ["direction"],
            registry=reg,
        )
        self.reconnects = Counter(
            "bridge_realtime_reconnects_total",
            "New Realtime sockets opened for a running call, by reason.",
            ["reason"],
            registry=reg,
        )
        self.errors = Counter(
            "bridge_realtime_errors_total", "Realtime API errors, by code.", ["code"], registry=reg
        )
        self.audio_seconds = Counter(
            "bridge_audio_seconds_total",
            "Audio bridged, by direction (in: caller to model; out: model to room).",
            ["direction"],
            registry=reg,
        )
        self.tokens = Counter(
            "bridge_tokens_total", "Tokens used, by kind.", ["kind"], registry=reg
        )
        self.cost = Counter(
            "bridge_cost_usd_total",
            "Estimated cost in USD at list prices, by model.",
            ["model"],
            registry=reg,
        )
        self.interruptions = Counter(
            "bridge_interruptions_total", "Barge-ins that cut the agent short.", registry=reg
        )
        self.metadata_rejected = Counter(
            "bridge_metadata_rejected_total",
            "Dispatch metadata fields refused (the call went on with the profile's value).",
            registry=reg,
        )

        self.tool_calls = Counter(
            "bridge_tool_calls_total",
            "Function calls of the model, by tool and outcome (ok, invalid_arguments, error,"
            " timeout, oversize, cancelled).",
            ["tool", "outcome"],
            registry=reg,
        )
        self.tool_seconds = Histogram(
            "bridge_tool_call_seconds",
            "A tool's run: arguments received to the output ready (calls that ran: ok, error,"
            " timeout, oversize).",
            ["tool"],
            buckets=TOOL_BUCKETS,
            registry=reg,
        )
        self.tool_errors = Counter(
            "bridge_tool_errors_total",
            "Tool calls that gave the model an error text instead of an output, by reason.",
            ["tool", "reason"],
            registry=reg,
        )
        self._tools: set[str] = set()
        self._models: set[str] = set()
        self.declare_known()

    def declare_known(self) -> None:
        """Export every label set known in advance at zero (Prometheus' instrumentation
        guidelines): outcomes, directions, token kinds, reconnect reasons, error codes."""
        for outcome in OUTCOMES:
            self.sessions.labels(outcome)
        for direction in DIRECTIONS:
            self.audio_seconds.labels(direction)
            self.frames_dropped.labels(direction)
        for kind in TOKEN_KINDS:
            self.tokens.labels(kind)
        for reason in RECONNECT_REASONS:
            self.reconnects.labels(reason)
        for code in (*sorted(KNOWN_CODES), "other"):
            self.errors.labels(code)
        for action in ("redispatched", "abandoned"):
            self.rescues.labels(action)

    def declare_models(self, models: Iterable[str]) -> None:
        """The cost series of each model the profiles name, at zero (idempotent)."""
        for model in models:
            if model not in self._models:
                self._models.add(model)
                self.cost.labels(model)

    def error(self, code: str | None) -> None:
        self.errors.labels(code if code in KNOWN_CODES else "other").inc()

    def declare_tools(self, names: Iterable[str]) -> None:
        """Create every label set of these tools at zero, so rates exist before the first call.

        Idempotent; called with the names the profiles declare (and ``(undeclared)``).
        """
        for name in (*names, UNDECLARED_TOOL):
            if name in self._tools:
                continue
            self._tools.add(name)
            self.tool_seconds.labels(name)
            for outcome in TOOL_OUTCOMES:
                self.tool_calls.labels(name, outcome)
            for reason in TOOL_ERRORS:
                self.tool_errors.labels(name, reason)

    def tool_call(self, name: str, outcome: str, seconds: float | None) -> None:
        """Count one call of ``name`` (a declared tool's name, or ``(undeclared)``)."""
        self.declare_tools((name,))
        self.tool_calls.labels(name, outcome).inc()
        if outcome in TOOL_ERRORS:
            self.tool_errors.labels(name, outcome).inc()
        if seconds is not None:
            self.tool_seconds.labels(name).observe(seconds)


_default: BridgeMetrics | None = None


def default_metrics() -> BridgeMetrics:
    """The process-wide metrics (created on first use, on the default registry)."""
    global _default
    if _default is None:
        _default = BridgeMetrics()
    return _default
