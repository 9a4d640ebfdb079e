"""Counters a running simulator keeps, for tests, the benchmark and operators."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class SimulatorStats:
    """Running totals over the simulator's life (all connections).

    Counters keyed by a name hold, e.g., ``errors_sent["response_cancel_not_active"]`` or
    ``faults_fired["drop@agent_speaking"]``.
    """

    connections: int = 0
    """WebSocket sessions opened (handshake accepted)."""
    active_connections: int = 0
    rejected_handshakes: Counter[int] = field(default_factory=Counter)
    """Refused upgrades by HTTP status (401 bad key, 404 path, faults ...)."""
    faults_fired: Counter[str] = field(default_factory=Counter)
    """By fault spec as text, e.g. ``drop@agent_speaking``."""
    session_updates: int = 0
    speech_turns: int = 0
    """``speech_started`` events sent."""
    commits: int = 0
    responses: int = 0
    """Responses created."""
    responses_done: Counter[str] = field(default_factory=Counter)
    """``response.done`` by status: completed, cancelled, incomplete."""
    cancellations: Counter[str] = field(default_factory=Counter)
    """By reason: ``turn_detected`` or ``client_cancelled``."""
    truncations: int = 0
    items_created: Counter[str] = field(default_factory=Counter)
    """Items created by clients, by item type."""
    errors_sent: Counter[str] = field(default_factory=Counter)
    """``error`` events by code (by type when the code is null)."""
    appends: int = 0
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0
    frames_in: int = 0
    frames_out: int = 0

    def snapshot(self) -> dict[str, Any]:
        """A plain-dict copy (JSON-friendly; counter keys become strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
            )
        return out
