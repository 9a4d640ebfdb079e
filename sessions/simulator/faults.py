"""Fault injection: what goes wrong, at which moment of a conversation, and how often.

A fault is written ``KIND[:ARG][@PHASE][*COUNT]``, for example ``drop@agent_speaking``,
``stall:2.5@caller_speaking``, ``error:rate_limit_exceeded*3`` or ``reject:401*inf``.

KIND (ARG):

- ``drop``: close the socket with 1011 "simulated drop";
- ``tcp_close``: abort the TCP connection, no close frame (the client sees 1006);
- ``stall[:SECONDS]``: send nothing for SECONDS (default: for good); pongs and close frames
  are held back and sent when the stall ends; what the client sends meanwhile is read and
  ignored;
- ``delay:MS``: from then on every outgoing frame leaves MS later;
- ``malformed[:N]``: N junk frames (default 5, one of each: invalid JSON, a binary frame, an
  event missing required fields, an event with fields of the wrong type, a truncated frame);
- ``unknown[:N]``: N unknown things (default 3): events of unknown types and unknown fields
  on real events, the first at once and the rest interleaved with the following frames;
- ``error:CODE``: an ``error`` event with that code; fatal codes then close (see
  ``wire.ERRORS``);
- ``expire``: the session expires now (``session_expired``, then close 1001);
- ``reject:STATUS``: refuse the handshake with that HTTP status (always phase ``connect``);
- ``odd_deltas``: from then on audio deltas split samples (odd byte counts), some are empty,
  and unknown events are interleaved; the concatenated audio is unchanged.

PHASE: ``connect`` (during the handshake, before ``session.created``), ``any`` (the first
opportunity once the socket is open: right after ``session.created``; the default),
``idle`` (after a ``session.updated`` while nothing happens, or at the first append after
it), ``caller_speaking`` (right after ``speech_started``), ``agent_speaking`` (right after
the first audio delta of a response), ``after_reply`` (at the first append while nothing
happens after a response completed: "between turns, once the agent has answered").

COUNT: how many times the fault fires over the simulator's life, across connections:
default 1; ``*0`` or ``*inf`` means every time the phase comes round.
"""

from __future__ import annotations

import math
import re
from dataclasses import InitVar, dataclass
from enum import StrEnum

from sessions.errors import ConfigError


class FaultKind(StrEnum):
    """What goes wrong."""

    DROP = "drop"
    TCP_CLOSE = "tcp_close"
    STALL = "stall"
    DELAY = "delay"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    ERROR = "error"
    EXPIRE = "expire"
    REJECT = "reject"
    ODD_DELTAS = "odd_deltas"


class Phase(StrEnum):
    """When in a conversation a fault fires."""

    CONNECT = "connect"
    ANY = "any"
    IDLE = "idle"
    CALLER_SPEAKING = "caller_speaking"
    AGENT_SPEAKING = "agent_speaking"
    AFTER_REPLY = "after_reply"


_NO_ARG = {FaultKind.DROP, FaultKind.TCP_CLOSE, FaultKind.EXPIRE, FaultKind.ODD_DELTAS}
_ARG_REQUIRED = {FaultKind.DELAY, FaultKind.ERROR, FaultKind.REJECT}
_DEFAULT_FRAMES = {FaultKind.MALFORMED: 5, FaultKind.UNKNOWN: 3}
_SPEC = re.compile(
    r"^(?P<kind>[a-z_]+)(?::(?P<arg>[^@*]*))?(?:@(?P<phase>[a-z_]+))?(?:\*(?P<count>[^@*:]+))?$"
)
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")


def _fail(spec: str, why: str) -> ConfigError:
    return ConfigError(f"bad fault spec {spec!r}: {why} (grammar: KIND[:ARG][@PHASE][*COUNT])")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault to inject (``count=None``: every time); ``parse_fault`` builds it from text."""

    kind: FaultKind
    arg: str | None = None
    phase: Phase = Phase.ANY
    count: int | None = 1
    source: InitVar[str | None] = None
    """The text the spec was parsed from, quoted in error messages."""

    def __post_init__(self, source: str | None) -> None:
        text = source or self._render(str(self.kind), self.arg, str(self.phase), self.count)
        try:
            kind = FaultKind(self.kind)
        except ValueError:
            kinds = ", ".join(k.value for k in FaultKind)
            raise _fail(text, f"unknown kind {self.kind!r}; kinds are {kinds}") from None
        try:
            phase = Phase(self.phase)
        except ValueError:
            phases = ", ".join(p.value for p in Phase)
            raise _fail(text, f"unknown phase {self.phase!r}; phases are {phases}") from None
        if kind is FaultKind.REJECT:
            if phase not in (Phase.CONNECT, Phase.ANY):
                raise _fail(text, "reject happens at the handshake: its phase is connect")
            phase = Phase.CONNECT
        if self.count is not None and self.count < 1:
            raise _fail(text, "count must be a positive integer, 0 or inf")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "phase", phase)
        self._check_arg(text)

    def _check_arg(self, text: str) -> None:
        arg = self.arg
        if arg is None or arg == "":
            if self.kind in _ARG_REQUIRED:
                raise _fail(text, f"{self.kind} needs an argument ({self.kind}:...)")
            object.__setattr__(self, "arg", None)
            return
        if self.kind in _NO_ARG:
            raise _fail(text, f"{self.kind} takes no argument")
        if self.kind in (FaultKind.STALL, FaultKind.DELAY):
            try:
                value = float(arg)
            except ValueError:
                value = math.nan
            if not (value >= 0.0) or (self.kind is FaultKind.DELAY and math.isinf(value)):
                unit = "seconds" if self.kind is FaultKind.STALL else "milliseconds"
                raise _fail(text, f"{self.kind} needs a non-negative number of {unit}")
        elif self.kind in (FaultKind.MALFORMED, FaultKind.UNKNOWN):
            if not arg.isdigit() or int(arg) < 1:
                raise _fail(text, f"{self.kind} needs a positive number of frames")
        elif self.kind is FaultKind.ERROR:
            if not _CODE.match(arg):
                raise _fail(text, "error needs a code like server_error or rate_limit_exceeded")
        elif self.kind is FaultKind.REJECT:
            if not arg.isdigit() or not 400 <= int(arg) <= 599:
                raise _fail(text, "reject needs an HTTP status from 400 to 599")

    @property
    def seconds(self) -> float:
        """``stall``: how long (``inf`` when no argument was given)."""
        return math.inf if self.arg is None else float(self.arg)

    @property
    def delay_ms(self) -> float:
        """``delay``: milliseconds added to every later frame."""
        return float(self.arg or 0)

    @property
    def frames(self) -> int:
        """``malformed``/``unknown``: how many frames."""
        return int(self.arg) if self.arg else _DEFAULT_FRAMES.get(self.kind, 1)

    @property
    def code(self) -> str:
        """``error``: the error code."""
        return self.arg or ""

    @property
    def status(self) -> int:
        """``reject``: the HTTP status."""
        return int(self.arg or 0)

    @staticmethod
    def _render(kind: str, arg: str | None, phase: str, count: int | None) -> str:
        text = kind + (f":{arg}" if arg else "") + f"@{phase}"
        return text + ("*inf" if count is None else f"*{count}" if count != 1 else "")

    def __str__(self) -> str:
        return self._render(self.kind.value, self.arg, self.phase.value, self.count)


def parse_fault(text: str) -> FaultSpec:
    """Parse ``KIND[:ARG][@PHASE][*COUNT]``; raises ``ConfigError`` with the reason."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise _fail(text, "it does not follow the grammar")
    count_text = match["count"]
    count: int | None = 1
    if count_text is not None:
        if count_text in ("0", "inf"):
            count = None
        elif count_text.isdigit():
            count = int(count_text)
        else:
            raise _fail(text, "count must be a positive integer, 0 or inf")
    phase = match["phase"] or Phase.ANY.value
    # Strings are converted (and unknown names reported) by __post_init__.
    return FaultSpec(match["kind"], match["arg"], phase, count, source=text)  # type: ignore[arg-type]


class FaultPlan:
    """The simulator's faults with what is left of their counts, shared by all connections."""

    def __init__(self, specs: tuple[FaultSpec, ...]) -> None:
        self.specs = specs
        self._left: list[int | None] = [spec.count for spec in specs]

    def take(self, phase: Phase, *, kind: FaultKind | None = None) -> list[FaultSpec]:
        """The faults that fire at this ``phase`` checkpoint now; their counts go down.

        With ``kind``, only the first fault of that kind fires (a handshake is refused once).
        Without it, every matching fault except ``reject`` fires.
        """
        fired: list[FaultSpec] = []
        for index, spec in enumerate(self.specs):
            left = self._left[index]
            if spec.phase is not phase or left == 0:
                continue
            if (kind is None and spec.kind is FaultKind.REJECT) or (
                kind is not None and spec.kind is not kind
            ):
                continue
            if left is not None:
                self._left[index] = left - 1
            fired.append(spec)
            if kind is not None:
                break
        return fired
