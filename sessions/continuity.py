"""When to open, replay, switch, ping, give up on and close sockets, without I/O.

:class:`Continuity` decides how a conversation outlives its sockets; the supervisor
(``sessions.supervisor``) is its pump: it owns the sockets, the tasks and the caller's audio,
feeds the core what happened, carries out the actions it returns, and calls :meth:`tick` at
:attr:`~Continuity.next_deadline`. The core holds no socket, no task, no clock: every input
carries ``now`` from the pump's one monotonic clock. The server's ``expires_at`` is wall time;
the pump converts it once, when the socket opens, into ``expires_in`` seconds from that ``now``.

Inputs: :meth:`start`, :meth:`opened` (configured), :meth:`replayed`, :meth:`open_failed`,
:meth:`lost` (the reader ended), :meth:`receive` (an event of the live socket),
:meth:`expecting` (a reply was asked for), :meth:`pong`, :meth:`tick`, :meth:`failed`,
:meth:`close`. Actions out: :class:`Open`, :class:`Replay`, :class:`Activate`, :class:`Close`,
:class:`Abort`, :class:`Ping`, :class:`Fail`. Sockets are named by small integers the core
hands out in :class:`Open`.

States (:class:`ContinuityState`)::

    IDLE ─start→ STARTING ─opened→ LIVE ─window, boundary→ ROLLING ─replayed at a boundary→ LIVE
                     │              │ ▲                       │ └─ not at a boundary, failed → LIVE
                 open_failed       lost └────── replayed ───┐ lost
                     ▼              ▼                       │  ▼
                   IDLE        RECONNECTING ─failed→ BACKING_OFF ─due→ RECONNECTING
                                    └─ fatal error, or an outage beyond max_outage_s → FAILED
    close() from anywhere → CLOSED

- **Rollover.** From the live socket's deadline (``expires_at``, or ``max_session_s`` after it
  opened, whichever is first), with a margin (15 % of the lifetime, at least 2 s, at most
  ``rollover_margin_s``; half the lifetime when less than 1 s would be left): from
  ``deadline - margin`` a :class:`~sessions.turns.Boundary` is looked for every
  ``boundary_poll_s``. A strict one (nothing in flight on either side) will do; in the last
  third of the margin, a loose one too (a reply still awaited or playing out: it is replayed
  as text and plays on). At a boundary a successor is opened and replayed while the live
  socket carries on; once replayed, if the pump still reports a boundary, the successor is
  activated and the old socket closed in one step, else the successor is closed and the look
  goes on. A failed attempt is retried after ``rollover_retry_s``; if the old socket expires
  first, recovery takes over.
- **Loss.** A socket lost while live is reconnected at once, then with full-jitter
  exponential backoff (``rng.uniform(0, delay)``, ``delay`` doubling from
  ``reconnect_base_s`` to ``reconnect_max_s``); each attempt may connect for
  ``recover_connect_s`` × 1.5 per attempt already failed (:attr:`Open.connect_timeout`), so
  attempts made during an outage keep sending fresh SYNs. The loss is ``expired`` (after
  ``session_expired``, or a 1001 close), ``stalled`` (the core aborted it) or ``dropped``. A
  fatal error seen on the socket, a fatal refusal of a new one, or a failed attempt more than
  ``max_outage_s`` after the loss ends in :class:`Fail`.
- **Stall.** The live socket is aborted when nothing was heard from it for ``stall_timeout_s``
  while a reply is expected (counted from when it became expected, if that is later: a reply
  asked for after a long quiet is not late yet), or when a ping is not answered within
  ``ping_timeout`` (pings every ``ping_interval``; the pump turns ``websockets``' own
  keepalive off so there is one). A tick that comes more than ``pump_late_s`` after such a
  deadline means the pump itself was held up (a starved process: the pong or the event may
  be sitting unread in its socket), so the socket is judged once more ``pump_grace_s``
  later, after the reader has had its turn, instead of being aborted for our own stall.
- **Replay** of a successor must complete within ``replay_timeout_s``, else that attempt failed.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from sessions import events as ev
from sessions.errors import ErrorKind, InvalidState
from sessions.events import ServerEvent
from sessions.turns import Boundary

Reason = Literal["start", "rollover", "dropped", "expired", "stalled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuityOptions:
    """How a conversation survives its sockets (seconds unless named otherwise)."""

    max_session_s: float | None = None  # roll over by then even if the server allows more
    rollover_margin_s: float = 300.0  # before expires_at (shrunk for short sessions)
    tail_ms: int = 500  # caller audio re-sent to the new socket at a rollover
    # Uncommitted caller audio re-sent after a drop, at most: what the caller said since the
    # model's last commit, and the silence around it, for a socket found dead up to 7.5 s
    # after it died (measured: a 5 s outage mid-turn left 10.5 s uncommitted; 10 s lost 0.5).
    resend_max_s: float = 20.0
    reconnect_base_s: float = 0.1
    reconnect_max_s: float = 5.0
    # Connect timeout of the first attempt after a loss, x1.5 per failed attempt (the pump
    # caps it at its own connect timeout): during an outage a connect waits on SYN
    # retransmissions (1, 3, 7 s...), so a short attempt followed by a fresh one reaches a
    # path that came back within about a second instead of at the next retransmission.
    recover_connect_s: float = 2.0
    max_outage_s: float = 30.0
    stall_timeout_s: float = 8.0  # nothing heard while a reply is expected
    # A keepalive or stall deadline met by a tick this late: the pump was held up, not the
    # server; judged again after pump_grace_s (measured: a starved worker's loop stalled
    # 5-15 s with 8 calls on 2 cores, and every call reconnected for it).
    pump_late_s: float = 1.0
    pump_grace_s: float = 0.5
    audio_ring_s: float = 30.0
    max_replay_audio_s: float = 30.0
    replay_timeout_s: float = 10.0
    boundary_poll_s: float = 0.05  # how often a boundary is looked for in the rollover window
    rollover_retry_s: float = 1.0  # after a failed rollover attempt


@dataclass(slots=True)
class ContinuityStats:
    """Figures of one conversation. The core counts what it decides (reconnects, rollovers,
    outages, failed attempts); the pump counts audio and replayed items."""

    reconnects: Counter[str] = field(default_factory=Counter)  # by reason
    rollovers: int = 0
    rollover_gaps_ms: list[float] = field(default_factory=list)
    reconnect_ms: list[float] = field(default_factory=list)  # loss → new socket live
    resent_samples: int = 0
    lost_samples: int = 0
    replayed_items: int = 0
    replayed_audio_items: int = 0
    dropped_audio_items: int = 0
    failed_attempts: int = 0


class ContinuityState(enum.Enum):
    IDLE = "idle"  # not started, or the first socket could not be opened
    STARTING = "starting"  # the first socket is being opened
    LIVE = "live"  # a socket carries the call
    ROLLING = "rolling"  # ... and its successor is being opened and replayed
    RECONNECTING = "reconnecting"  # the socket was lost: a new one is being opened, replayed
    BACKING_OFF = "backing_off"  # the last attempt failed; the next one is due later
    CLOSED = "closed"  # close() was called
    FAILED = "failed"  # the conversation cannot go on


# ---------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Open:
    """Connect a new socket and configure it; report :meth:`Continuity.opened` or
    :meth:`Continuity.open_failed`. ``connect_timeout``: give up connecting after this long
    (a recovery attempt's; None: the pump's own)."""

    socket: int
    purpose: Literal["start", "rollover", "recover"]
    connect_timeout: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Replay:
    """Send the conversation so far to ``socket``; report :meth:`Continuity.replayed` once
    the server has it all."""

    socket: int


@dataclass(frozen=True, slots=True)
class Activate:
    """Make ``socket`` carry the call, synchronously: caller audio re-sent from the last
    ``tail_ms`` (rollover) or from what the lost socket had not committed (recovery), calls
    made meanwhile sent, the caller's turn answered if it was left unanswered or its reply
    cut (``reply_cut``). ``waited_s``: since the loss, or since the successor was opened."""

    socket: int
    reason: Reason
    waited_s: float = 0.0
    reply_cut: bool = False


@dataclass(frozen=True, slots=True)
class Close:
    """Close ``socket``: it is no longer needed, was lost, or (``failed``) the attempt to
    prepare it failed for ``reason``."""

    socket: int
    code: int
    reason: str
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop ``socket``'s TCP connection now; the reader will report :meth:`Continuity.lost`."""

    socket: int
    why: str


@dataclass(frozen=True, slots=True)
class Ping:
    """Send a ping on ``socket``; report :meth:`Continuity.pong` when it is answered."""

    socket: int


@dataclass(frozen=True, slots=True)
class Fail:
    """Give up: close every socket; the conversation ends with ``reason``."""

    reason: str
    fatal: bool


ContinuityAction = Open | Replay | Activate | Close | Abort | Ping | Fail
Actions = tuple[ContinuityAction, ...]

_ENDED = (ContinuityState.CLOSED, ContinuityState.FAILED)


@dataclass(slots=True)
class _Window:
    start: float  # look for a strict boundary from here
    loosen: float  # accept a loose one from here


class Continuity:
    """The decisions of a conversation across sockets; see the module docstring.

    ``ping_interval`` / ``ping_timeout``: keepalive of the live socket (``None``: off).
    ``rng``: the backoff's jitter (seed it in tests).
    """

    def __init__(
        self,
        options: ContinuityOptions | None = None,
        *,
        ping_interval: float | None = 10.0,
        ping_timeout: float | None = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options or ContinuityOptions()
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.stats = ContinuityStats()
        self._rng = rng or random.Random()
        self.state = ContinuityState.IDLE
        #: The socket carrying the call, and the one being prepared (first, successor, or
        #: recovery attempt).
        self.live: int | None = None
        self.standby: int | None = None
        self._sockets = 0
        # the standby
        self._replay_due: float | None = None  # set while it is being replayed
        self._standby_opened_at = 0.0
        self._standby_expires: float | None = None
        self._prepare_started = 0.0
        # the live socket
        self._heard_at = 0.0
        self._expect_since: float | None = None  # a reply is expected since
        self._next_ping: float | None = None
        self._ping_sent: float | None = None
        self._recheck_at: float | None = None  # a deadline met late, judged again then
        self._aborted = False
        self._window: _Window | None = None
        self._look_at: float | None = None  # next look for a rollover boundary
        self._expired = False
        self._stalled = False
        self._fatal: str | None = None  # kept across sockets: it ends the conversation
        # an outage
        self._lost_at = 0.0
        self._lost_reason: Reason = "dropped"
        self._reply_cut = False
        self._delay = self.options.reconnect_base_s
        self._attempts = 0  # recovery attempts since the loss
        self._retry_at: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, now: float) -> Actions:
        """Open the first socket (its failure is the caller's to report: nothing to keep)."""
        if self.state is not ContinuityState.IDLE:
            raise InvalidState(f"start() in state {self.state.value}")
        self.state = ContinuityState.STARTING
        self.standby = self._new_socket()
        return (Open(self.standby, "start"),)

    def close(self) -> None:
        """The conversation ends on purpose; every later input is ignored."""
        self.state = ContinuityState.CLOSED
        self.live = self.standby = None
        self._replay_due = self._retry_at = None

    @property
    def loss_reason(self) -> Reason:
        """Why the last live socket was lost: ``expired``, ``stalled`` or ``dropped``."""
        return self._lost_reason

    def failed(self, reason: str) -> Actions:
        """The pump cannot go on (a bug in a reader, say): give up."""
        if self.state in _ENDED:
            return ()
        return self._fail(reason, fatal=False)

    # ------------------------------------------------------------------ sockets

    def opened(self, socket: int, now: float, *, expires_in: float | None) -> Actions:
        """``socket`` is connected and configured; the server ends it ``expires_in`` seconds
        from ``now`` (``None``: it did not say)."""
        expires = now + expires_in if expires_in is not None else None
        if socket != self.standby or self._replay_due is not None:
            return (Close(socket, 1000, "not needed"),)
        if self.state is ContinuityState.STARTING:
            self._make_live(socket, now, opened_at=now, expires=expires)
            return (Activate(socket, "start"),)
        self._standby_opened_at = now
        self._standby_expires = expires
        self._replay_due = now + self.options.replay_timeout_s
        return (Replay(socket),)

    def replayed(self, socket: int, now: float, *, boundary: Boundary) -> Actions:
        """The server holds the whole conversation replayed into ``socket``. ``boundary``:
        where the turn stands now, with the conversation unchanged since the replay began
        (:attr:`Boundary.NONE` if it changed)."""
        if socket != self.standby or self._replay_due is None:
            return ()
        opened_at, expires = self._standby_opened_at, self._standby_expires
        if self.state is ContinuityState.ROLLING:
            if not self._acceptable(now, boundary):
                self._back_to_looking(now + self.options.boundary_poll_s)
                return (Close(socket, 1000, "rollover postponed"),)
            old = self.live
            assert old is not None
            waited = now - self._prepare_started
            self._make_live(socket, now, opened_at=opened_at, expires=expires)
            self.stats.rollovers += 1
            return (Activate(socket, "rollover", waited), Close(old, 1000, "rollover"))
        if self.state is ContinuityState.RECONNECTING:
            reason, reply_cut, waited = self._lost_reason, self._reply_cut, now - self._lost_at
            self._make_live(socket, now, opened_at=opened_at, expires=expires)
            self.stats.reconnects[reason] += 1
            self.stats.reconnect_ms.append(waited * 1000)
            return (Activate(socket, reason, waited, reply_cut),)
        return ()

    def open_failed(self, socket: int, now: float, *, reason: str, fatal: bool) -> Actions:
        """``socket`` could not be opened, configured or replayed; ``fatal``: retrying cannot
        help (a key refused, a configuration refused)."""
        if socket != self.standby:
            return ()
        if self.state is ContinuityState.STARTING:
            self.state = ContinuityState.IDLE
            self.standby = None
            return ()
        return self._attempt_failed(now, reason, fatal=fatal, close=None)

    def lost(self, socket: int, now: float, *, code: int, reason: str, reply_cut: bool) -> Actions:
        """``socket``'s reader ended with close ``code``/``reason``; ``reply_cut``: a response
        was in flight on it."""
        if self.state in _ENDED:
            return ()
        if socket == self.standby:
            return self._attempt_failed(
                now, f"connection closed ({code})", fatal=False, close=(socket, 1006)
            )
        if socket != self.live:
            return ()
        actions: list[ContinuityAction] = [Close(socket, 1006, "lost")]
        if self.standby is not None:  # a successor in preparation: its replay is stale now
            actions.append(Close(self.standby, 1000, "rollover abandoned"))
        self.live = self.standby = None
        self._replay_due = None
        if self._fatal is not None:
            return (*actions, *self._fail(self._fatal, fatal=True))
        if self._expired or code == 1001:
            self._lost_reason = "expired"
        elif self._stalled or (code == 1011 and "ping timeout" in reason):
            self._lost_reason = "stalled"
        else:
            self._lost_reason = "dropped"
        self._lost_at = now
        self._reply_cut = reply_cut
        self._delay = self.options.reconnect_base_s
        self._attempts = 0
        return (*actions, self._attempt())

    # ------------------------------------------------------------------ the live socket

    def receive(self, event: ServerEvent, now: float, *, reply_expected: bool) -> bool:
        """``event`` arrived on the live socket in a frame read at ``now``; after it, the wire
        does (or does not) expect a reply. True when :attr:`next_deadline` may have come
        earlier (a reply is expected from now on)."""
        if self.live is None:
            return False
        self._heard_at = now
        self._recheck_at = None
        if isinstance(event, ev.ErrorReceived):
            if event.error.code == "session_expired":
                self._expired = True
            elif event.error.kind is ErrorKind.FATAL:
                self._fatal = str(event.error)
        return self.expecting(now, reply_expected)

    def expecting(self, now: float, reply_expected: bool) -> bool:
        """Whether the live socket owes us a reply, as of ``now`` (after a request of ours).
        True when :attr:`next_deadline` may have come earlier."""
        if not reply_expected:
            self._expect_since = None
            return False
        if self._expect_since is None and self.live is not None:
            self._expect_since = now
            return True
        return False

    def pong(self, socket: int, now: float) -> None:
        if socket == self.live:
            self._ping_sent = None
            self._recheck_at = None

    # ------------------------------------------------------------------ time

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`tick` must be called next (``None``: not before another input)."""
        due: list[float] = []
        state = self.state
        if state in _ENDED:
            return None
        if (
            state is ContinuityState.LIVE or state is ContinuityState.ROLLING
        ) and not self._aborted:
            judge: list[float] = []  # when the socket is judged
            if self._ping_sent is not None:
                if self.ping_timeout is not None:
                    judge.append(self._ping_sent + self.ping_timeout)
            elif self._next_ping is not None:
                due.append(self._next_ping)
            if self._expect_since is not None:
                judge.append(self._silent_since() + self.options.stall_timeout_s)
            recheck = self._recheck_at
            due += judge if recheck is None else [max(t, recheck) for t in judge]
            if state is ContinuityState.LIVE and self._look_at is not None:
                due.append(self._look_at)
        if self._replay_due is not None:
            due.append(self._replay_due)
        if state is ContinuityState.BACKING_OFF and self._retry_at is not None:
            due.append(self._retry_at)
        return min(due) if due else None

    def tick(self, now: float, *, boundary: Boundary = Boundary.NONE) -> Actions:
        """Act on whatever is due at ``now``; ``boundary``: where the turn stands."""
        state = self.state
        actions: list[ContinuityAction] = []
        live = self.live
        if (state is ContinuityState.LIVE or state is ContinuityState.ROLLING) and live is not None:
            actions += self._keep_alive(live, now)
        if state is ContinuityState.LIVE and not self._aborted and self._look_at is not None:
            if now >= self._look_at:
                if self._acceptable(now, boundary):
                    self.state = ContinuityState.ROLLING
                    self.standby = self._new_socket()
                    self._prepare_started = now
                    self._look_at = None
                    actions.append(Open(self.standby, "rollover"))
                else:
                    self._look_at = now + self.options.boundary_poll_s
        if self._replay_due is not None and now >= self._replay_due:
            assert self.standby is not None
            actions += self._attempt_failed(
                now,
                f"the replay was not confirmed within {self.options.replay_timeout_s:g} s",
                fatal=False,
                close=(self.standby, 1000),
            )
        if self.state is ContinuityState.BACKING_OFF:
            assert self._retry_at is not None
            if now >= self._retry_at:
                actions.append(self._attempt())
        return tuple(actions)

    def _keep_alive(self, live: int, now: float) -> list[ContinuityAction]:
        if self._aborted:
            return []
        if self._ping_sent is not None:
            if self.ping_timeout is not None and now >= self._ping_sent + self.ping_timeout:
                if self._late(now, self._ping_sent + self.ping_timeout):
                    return []
                return self._abort(live, f"no pong within {self.ping_timeout:g} s")
        elif self._next_ping is not None and now >= self._next_ping:
            assert self.ping_interval is not None
            self._ping_sent = now
            self._next_ping = now + self.ping_interval
            return [Ping(live)]
        if self._expect_since is not None:
            silent = now - self._silent_since()
            if silent >= self.options.stall_timeout_s:
                if self._late(now, self._silent_since() + self.options.stall_timeout_s):
                    return []
                return self._abort(live, f"silent for {silent:.1f} s while a reply is expected")
        return []

    def _late(self, now: float, due: float) -> bool:
        """Whether to hold off judging a socket whose deadline ``due`` has passed: once, for
        ``pump_grace_s``, when this tick came more than ``pump_late_s`` after it."""
        if self._recheck_at is not None:
            return now < self._recheck_at
        if now - due > self.options.pump_late_s:
            self._recheck_at = now + self.options.pump_grace_s
            return True
        return False

    def _silent_since(self) -> float:
        assert self._expect_since is not None
        return max(self._heard_at, self._expect_since)

    def _abort(self, live: int, why: str) -> list[ContinuityAction]:
        self._aborted = True
        self._stalled = True
        return [Abort(live, why)]

    # ------------------------------------------------------------------ helpers

    def _new_socket(self) -> int:
        self._sockets += 1
        return self._sockets

    def _make_live(
        self, socket: int, now: float, *, opened_at: float, expires: float | None
    ) -> None:
        self.state = ContinuityState.LIVE
        self.live = socket
        self.standby = None
        self._replay_due = None
        self._heard_at = now
        self._expect_since = None
        self._ping_sent = None
        self._recheck_at = None
        self._next_ping = now + self.ping_interval if self.ping_interval is not None else None
        self._aborted = self._expired = self._stalled = False
        self._window = self._rollover_window(opened_at, expires)
        self._look_at = self._window.start if self._window is not None else None

    def _rollover_window(self, opened_at: float, expires: float | None) -> _Window | None:
        options = self.options
        deadline = expires
        if options.max_session_s is not None:
            cap = opened_at + options.max_session_s
            deadline = cap if deadline is None else min(deadline, cap)
        if deadline is None:
            return None
        lifetime = deadline - opened_at
        margin = min(options.rollover_margin_s, max(lifetime * 0.15, 2.0))
        if lifetime - margin < 1.0:
            margin = lifetime / 2
        return _Window(deadline - margin, deadline - margin / 3)

    def _acceptable(self, now: float, boundary: Boundary) -> bool:
        if boundary is Boundary.STRICT:
            return True
        window = self._window
        return boundary is Boundary.LOOSE and window is not None and now >= window.loosen

    def _back_to_looking(self, look_at: float) -> None:
        self.state = ContinuityState.LIVE
        self.standby = None
        self._replay_due = None
        self._look_at = look_at

    def _attempt(self) -> Open:
        self.state = ContinuityState.RECONNECTING
        self.standby = self._new_socket()
        self._retry_at = None
        timeout = self.options.recover_connect_s * 1.5**self._attempts
        self._attempts += 1
        return Open(self.standby, "recover", timeout)

    def _attempt_failed(
        self, now: float, reason: str, *, fatal: bool, close: tuple[int, int] | None
    ) -> Actions:
        closing: Actions = (Close(*close, reason, failed=True),) if close else ()
        if self.state is ContinuityState.ROLLING:
            # The old socket carries on; if it expires first, recovery takes over.
            self.stats.failed_attempts += 1
            self._back_to_looking(now + self.options.rollover_retry_s)
            return closing
        if self.state is not ContinuityState.RECONNECTING:
            return closing
        self.standby = None
        self._replay_due = None
        if fatal:
            return (*closing, *self._fail(reason, fatal=True))
        self.stats.failed_attempts += 1
        if now - self._lost_at > self.options.max_outage_s:
            limit = f"{self.options.max_outage_s:g}"
            return (
                *closing,
                *self._fail(f"the Realtime API was unreachable for over {limit} s", fatal=False),
            )
        self.state = ContinuityState.BACKING_OFF
        self._retry_at = now + self._rng.uniform(0, self._delay)  # full jitter
        self._delay = min(self._delay * 2, self.options.reconnect_max_s)
        return closing

    def _fail(self, reason: str, *, fatal: bool) -> Actions:
        self.state = ContinuityState.FAILED
        self.live = self.standby = None
        self._replay_due = self._retry_at = None
        return (Fail(reason, fatal),)
