"""The simulator's settings: one frozen object, checked when built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from sessions.errors import ConfigError

from .faults import FaultSpec


class Behavior(StrEnum):
    """What the simulated model says (see ``behaviors``)."""

    ECHO = "echo"
    TONE = "tone"
    TOOL = "tool"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """How a simulator behaves; every connection it serves gets the same settings."""

    behavior: Behavior = Behavior.ECHO
    expire_after_s: float = 3600.0
    """Session lifetime: ``expires_at`` in ``session.created``, then ``session_expired``."""
    pace: float = 4.0
    """Audio deltas are sent this many times faster than real time (``inf``: at once)."""
    delta_ms: int = 40
    """Audio per ``response.output_audio.delta`` (40 ms = 1920 bytes of PCM16)."""
    latency_ms: float = 0.0
    """Think time: from ``response.created`` (sent at once, as the real API does) to the
    first output event, i.e. the model's time to first token."""
    faults: tuple[FaultSpec, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    """When set, any other key (or none) is refused with HTTP 401; otherwise any key, or no
    key at all, is accepted (the real API refuses a missing key; a local server need not)."""
    rate_limit_tokens: int = 40_000
    """The ``tokens`` limit reported in ``rate_limits.updated``."""
    tool_from_turn: int = 1
    """The ``tool`` behaviour calls a function from this user turn on (1: the first); the
    turns before it are answered as ``echo`` (a conversation, then a tool: e.g. the caller
    says goodbye on the third turn and the model hangs up)."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "behavior", Behavior(self.behavior))
        except ValueError:
            choices = ", ".join(b.value for b in Behavior)
            raise ConfigError(f"behavior must be one of {choices}, not {self.behavior!r}") from None
        if not (self.expire_after_s > 0) or math.isinf(self.expire_after_s):
            raise ConfigError(
                f"expire_after_s must be a positive number, not {self.expire_after_s}"
            )
        if not (self.pace > 0):
            raise ConfigError(f"pace must be positive (or inf), not {self.pace}")
        if not 1 <= self.delta_ms <= 10_000:
            raise ConfigError(f"delta_ms must be between 1 and 10000, not {self.delta_ms}")
        if not (0 <= self.latency_ms < math.inf):
            raise ConfigError(f"latency_ms must be a non-negative number, not {self.latency_ms}")
        if self.rate_limit_tokens < 1:
            raise ConfigError("rate_limit_tokens must be positive")
        if self.tool_from_turn < 1:
            raise ConfigError(f"tool_from_turn must be at least 1, not {self.tool_from_turn}")
        for fault in self.faults:
            if not isinstance(fault, FaultSpec):
                raise ConfigError(f"faults must be FaultSpec objects, not {fault!r}")
