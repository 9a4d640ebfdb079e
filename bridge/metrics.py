"""Prometheus metrics of a bridge process (``prometheus_client``; low-cardinality labels only).

No label ever carries a room, participant or session name: error codes are limited to the
known ones (others count as ``other``), directions and token kinds are fixed sets.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from sessions.error_codes import ERROR_CODES

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
STOP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
KNOWN_CODES = frozenset(ERROR_CODES) | {"connect", "handshake", "timeout", "malformed"}


class BridgeMetrics:
    """The bridge's metrics on one registry (the process default unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = reg = registry if registry is not None else REGISTRY
        self.sessions_active = Gauge(
            "bridge_sessions_active", "Calls bridged right now.", registry=reg
        )
        self.sessions = Counter(
            "bridge_sessions_total", "Calls ended, by outcome.", ["outcome"], registry=reg
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

    def error(self, code: str | None) -> None:
        self.errors.labels(code if code in KNOWN_CODES else "other").inc()


_default: BridgeMetrics | None = None


def default_metrics() -> BridgeMetrics:
    """The process-wide metrics (created on first use, on the default registry)."""
    global _default
    if _default is None:
        _default = BridgeMetrics()
    return _default
