"""A conversation that outlives its sockets: the pump around the continuity and turn cores.

:class:`SessionSupervisor` is what the bridge talks to. It offers the calls of one
:class:`~sessions.session.RealtimeSession` (events of the socket carrying the call reach
``handler`` synchronously) and owns what outlives a socket: the conversation mirror, the
caller's recent audio (:class:`~sessions.audio_log.AudioRing`), the turn state
(:class:`~sessions.turns.TurnTaking`, :attr:`SessionSupervisor.turns`) and the sockets
themselves. What to do with them, and when, is decided by :class:`~sessions.continuity.Continuity`
(rollover, reconnect with backoff, stall and keepalive, giving up: see ``sessions.continuity``);
this module feeds it what happened, carries out its actions and calls its ``tick`` at its next
deadline on one timer. Every time comes from the one injected ``clock``; the server's
``expires_at`` (wall time, from ``wall``) is converted once, when its socket opens.

What the actions mean for the call:

- **Rollover before expiry**: the successor is configured with the same ``session.update``
  and the conversation replayed into it (``sessions.replay``) while the old socket carries
  the call; then, in one synchronous step, caller audio switches to the new socket, starting
  with the last ``tail_ms`` of it re-sent (nothing of a turn the old socket committed), and the
  old socket is closed. No caller audio is lost; the switch gap (last append on the old socket
  → first on the new) is measured.
- **Recovery** after a drop, a stall or an expiry: once a new socket is configured and the
  conversation replayed, the caller audio since the last commit (what the dead server held
  uncommitted, plus what arrived meanwhile, at most ``resend_max_s``) is sent to it (beyond
  the ring's bound: lost, counted). A socket that stops draining (a lossy or cut path)
  keeps the caller's audio queued rather than dropping what waited too long: either TCP
  delivers it late, or the socket's ping goes unanswered, it is replaced, and the audio
  comes from the ring. Recovery attempts connect briefly at first (``recover_connect_s``),
  so a path that comes back is found without waiting on SYN retransmissions. If the
  caller's last turn was left unanswered, or a reply was cut, a response is asked for; a cut
  reply's text is replayed as far as it was received (or heard, when it was truncated), so
  the model carries on from what the caller heard.
- **Fatal errors** (a bad key refused at the handshake, quota, a deactivated account, a
  refused configuration) stop at once; so does an outage longer than ``max_outage_s``:
  :meth:`run` raises :class:`~sessions.errors.SessionFailed` with the reason.

Turn actions: every event of the live socket goes through :attr:`turns` before ``handler``
sees it; the actions it returns are handed to ``on_turn`` after ``handler`` returns (the
bridge carries them out; without a bridge they are dropped, and the turn state still tells
the continuity core where the turn boundaries are).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from sessions import events as ev
from sessions.audio_log import AudioRing
from sessions.connection import ConnectionOptions
from sessions.continuity import (
    Abort,
    Activate,
    Close,
    Continuity,
    ContinuityAction,
    ContinuityOptions,
    ContinuityState,
    ContinuityStats,
    Fail,
    Open,
    Ping,
    Replay,
)
from sessions.conversation import Conversation
from sessions.endpoint import Endpoint
from sessions.errors import (
    ConnectionClosed,
    ErrorKind,
    HandshakeRejected,
    RealtimeConnectionError,
    SessionFailed,
    SessionUpdateRejected,
)
from sessions.events import ItemId, ServerEvent
from sessions.protocol import OutboundFrame, Truncation
from sessions.replay import plan_replay
from sessions.session import RealtimeSession
from sessions.session_config import SessionConfig
from sessions.turns import Actions as TurnActions, Boundary, TurnTaking
from sessions.usage import PriceTable, Usage

__all__ = ["ContinuityOptions", "ContinuityStats", "SessionSupervisor"]

log = structlog.get_logger("sessions.supervisor")

EventHandler = Callable[[ServerEvent], None]
TurnHandler = Callable[[TurnActions], None]
SAMPLES_PER_MS = 24
_ENDED = (ContinuityState.CLOSED, ContinuityState.FAILED)


class SessionSupervisor:
    def __init__(
        self,
        endpoint: Endpoint,
        config: SessionConfig,
        *,
        handler: EventHandler,
        on_turn: TurnHandler | None = None,
        chunk_ms: int = 20,
        options: ConnectionOptions | None = None,
        continuity: ContinuityOptions | None = None,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.handler = handler
        #: Receives the turn core's actions for each event (after ``handler``).
        self.on_turn = on_turn
        self.chunk_ms = chunk_ms
        self.options = options or ConnectionOptions()
        self.continuity = continuity or ContinuityOptions()
        self.prices = prices or PriceTable()
        self.clock = clock
        self.wall = wall
        self.turns = TurnTaking.for_config(config)
        # The core keeps each live socket alive; websockets' own keepalive is turned off.
        self.core = Continuity(
            self.continuity,
            ping_interval=self.options.ping_interval,
            ping_timeout=self.options.ping_timeout,
            rng=rng,
        )
        # Caller audio is never dropped for having waited (the queue's age policy): a socket
        # that stops draining is found by its unanswered ping and replaced, and the audio it
        # held is re-sent from the ring; only the queue's memory bound still drops.
        self._socket_options = replace(
            self.options, ping_interval=None, ping_timeout=None, max_audio_age_s=math.inf
        )
        self.stats: ContinuityStats = self.core.stats
        self.conversation = Conversation()
        self.ring = AudioRing(self.continuity.audio_ring_s)
        self.samples_appended = 0
        self.audio_origin = 0  # global sample index of the current socket's first sample
        #: Called after each caller-audio append is written to a socket.
        self.on_audio_sent: Callable[[OutboundFrame], None] | None = None
        #: Called when a new socket took over: (reason: rollover | dropped | expired | stalled).
        self.on_reconnect: Callable[[str], None] = lambda _reason: None
        self._session: RealtimeSession | None = None  # the live socket
        self._sockets: dict[int, RealtimeSession] = {}  # every open one, by the core's number
        self._usage = Usage()
        self._cost = 0.0
        self._responses = 0
        self._dropped = 0  # caller appends dropped on sockets that are gone
        self._dropped_samples = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finished: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._last_commit = 0
        self._ranges: dict[str, tuple[int, int]] = {}  # user item → caller samples
        self._pending: list[Callable[[RealtimeSession], None]] = []  # calls made offline
        self._dead_from = 0  # caller audio the lost socket may not have committed
        self._items_before = 0  # conversation size when a rollover successor was opened
        self._switch_sent_at: float | None = None  # last append on the retired socket

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open and configure the first socket (errors propagate: nothing to keep alive)."""
        self._finished = asyncio.get_running_loop().create_future()
        [first] = self.core.start(self.clock())
        assert isinstance(first, Open)
        try:
            session = await self._open(first.socket)
        except BaseException as exc:
            self.core.open_failed(first.socket, self.clock(), reason=str(exc), fatal=True)
            raise
        self._opened(first.socket, session)

    async def run(self) -> None:
        """Until :meth:`close`; raises :class:`SessionFailed` if the conversation cannot go on."""
        assert self._finished is not None, "start() first"
        await asyncio.shield(self._finished)

    async def close(self, reason: str = "") -> None:
        """End the conversation: close the socket(s) and stop every background task."""
        self.core.close()
        if self._timer is not None:
            self._timer.cancel()
        live, self._session = self._session, None
        sockets = list(self._sockets.values())
        self._sockets.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if live is not None:
            self._absorb(live)
        for session in sockets:
            await session.close(1000, reason if session is live else "closing")
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ the pump

    def _feed(self, actions: tuple[ContinuityAction, ...]) -> None:
        """Carry out the core's actions, in order, then re-arm the timer."""
        try:
            for action in actions:
                self._execute(action)
        except Exception as exc:  # a bug of ours: end this conversation, not the process
            log.error("realtime.supervisor_failed", exc_info=exc)
            for action in self.core.failed(f"the session supervisor failed: {exc!r}"):
                if isinstance(action, Fail):
                    self._fail(action)
        self._arm()

    def _execute(self, action: ContinuityAction) -> None:
        if isinstance(action, Open):
            if action.purpose == "rollover":
                self._items_before = len(self.conversation)
            self._spawn(self._open_attempt(action), f"realtime-open-{action.purpose}")
        elif isinstance(action, Replay):
            self._replay(action.socket)
        elif isinstance(action, Activate):
            self._activate(action)
        elif isinstance(action, Close):
            session = self._sockets.pop(action.socket, None)
            if action.failed:  # the core is back to LIVE after a rollover attempt failed
                live = self.core.state is ContinuityState.LIVE
                log.warning(
                    "realtime.rollover_failed" if live else "realtime.reconnect_failed",
                    error=action.reason,
                )
            if session is not None:
                self._spawn(session.close(action.code, action.reason), "realtime-close")
        elif isinstance(action, Abort):
            log.warning("realtime.stalled", why=action.why)
            session = self._sockets.get(action.socket)
            if session is not None and session.connection is not None:
                session.connection.abort()
        elif isinstance(action, Ping):
            session = self._sockets.get(action.socket)
            if session is not None:
                self._spawn(self._ping(action.socket, session), "realtime-ping")
        elif isinstance(action, Fail):
            self._fail(action)

    def _arm(self) -> None:
        """Have :meth:`_on_timer` run at the core's next deadline (a timer already due no later
        stays: a deadline that moved later is found out when it fires)."""
        deadline = self.core.next_deadline
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(deadline - self.clock(), 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._feed(self.core.tick(self.clock(), boundary=self._boundary()))

    def _boundary(self) -> Boundary:
        session = self._session
        if session is None:
            return Boundary.NONE
        protocol = session.protocol
        return self.turns.boundary(reply_active=protocol.response_active or protocol.create_held)

    def _fail(self, action: Fail) -> None:
        log.error("realtime.session_failed", reason=action.reason, fatal=action.fatal)
        if self._finished is not None and not self._finished.done():
            self._finished.set_exception(SessionFailed(action.reason, fatal=action.fatal))
            self._finished.exception()  # retrieved by run(); silence "never retrieved"
        live, self._session = self._session, None
        if live is not None:
            self._absorb(live)
        for session in self._sockets.values():
            self._spawn(session.close(1000, "giving up"), "realtime-close")
        self._sockets.clear()

    # ------------------------------------------------------------------ sockets

    async def _open(self, socket: int, connect_timeout: float | None = None) -> RealtimeSession:
        options = self._socket_options
        if connect_timeout is not None and connect_timeout < options.connect_timeout:
            options = replace(options, connect_timeout=connect_timeout)
        session = RealtimeSession(
            self.endpoint,
            self.config,
            handler=self._standby_event,
            chunk_ms=self.chunk_ms,
            options=options,
            prices=self.prices,
            conversation=self.conversation,
            clock=self.clock,
        )
        await session.start()
        reader = self._spawn(session.run(), "realtime-reader")
        reader.add_done_callback(lambda task: self._reader_done(socket, session, task))
        return session

    def _opened(self, socket: int, session: RealtimeSession) -> None:
        self._sockets[socket] = session
        expires_at = session.expires_at
        # Wall time, converted once: seconds from the clock's "now" of the same moment.
        expires_in = expires_at - self.wall() if expires_at is not None else None
        self._feed(self.core.opened(socket, self.clock(), expires_in=expires_in))

    async def _open_attempt(self, action: Open) -> None:
        try:
            session = await self._open(action.socket, action.connect_timeout)
        except HandshakeRejected as exc:
            reason, fatal = str(exc), exc.fatal
        except SessionUpdateRejected as exc:
            reason, fatal = f"the new socket refused the configuration: {exc}", True
        except (RealtimeConnectionError, TimeoutError) as exc:
            reason, fatal = str(exc), False
        else:
            self._opened(action.socket, session)
            return
        if not fatal:
            event = "realtime.rollover_failed" if action.purpose == "rollover" else None
            log.warning(event or "realtime.reconnect_failed", error=reason)
        self._feed(self.core.open_failed(action.socket, self.clock(), reason=reason, fatal=fatal))

    async def _ping(self, socket: int, session: RealtimeSession) -> None:
        assert session.connection is not None
        try:
            await session.connection.ping()
        except ConnectionClosed:
            return  # the reader reports the loss
        self.core.pong(socket, self.clock())
        self._arm()

    def _standby_event(self, event: ServerEvent) -> None:
        """Events of a socket being prepared: only errors matter, nothing reaches the bridge."""
        if isinstance(event, ev.ErrorReceived) and event.error.kind is ErrorKind.FATAL:
            log.warning("realtime.standby_error", code=event.error.code)

    def _reader_done(self, socket: int, session: RealtimeSession, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # retrieved even when nobody needs it any more
        if self.core.state in _ENDED:
            return
        now = self.clock()
        if socket != self.core.live:  # a successor being prepared, or a retired socket
            closed = exc if isinstance(exc, ConnectionClosed) else ConnectionClosed(1006)
            self._feed(
                self.core.lost(socket, now, code=closed.code, reason=closed.reason, reply_cut=False)
            )
            return
        if not isinstance(exc, ConnectionClosed):
            self._feed(self.core.failed(f"the Realtime reader failed: {exc!r}"))
            return
        self._absorb(session)
        # The server loses its uncommitted input buffer with the socket, and frames written
        # just before a drop may never have arrived: rebuild the buffer on the next socket
        # from the last commit (bounded by resend_max_s and by the ring).
        uncommitted = max(self._last_commit, self.audio_origin)
        self._dead_from = max(
            uncommitted, self.samples_appended - int(self.continuity.resend_max_s * 24_000)
        )
        # Uncommitted audio older than resend_max_s is not re-sent: the model never gets it.
        self.stats.lost_samples += self._dead_from - uncommitted
        reply_cut = session.protocol.response_active
        self._session = None
        actions = self.core.lost(socket, now, code=exc.code, reason=exc.reason, reply_cut=reply_cut)
        if self.core.state is ContinuityState.RECONNECTING:
            log.warning(
                "realtime.socket_lost",
                reason=self.core.loss_reason,
                code=exc.code,
                detail=exc.reason,
            )
        self._feed(actions)

    def _absorb(self, session: RealtimeSession) -> None:
        """Keep a socket's usage figures when it goes away."""
        if session.connection is not None:
            queue = session.connection.queue
            self._dropped += queue.dropped_frames
            self._dropped_samples += queue.dropped_samples
            queue.dropped_frames = queue.dropped_samples = 0
        self._usage = self._usage + session.usage
        self._cost += session.cost_usd
        self._responses += session.responses
        session.usage, session.cost_usd, session.responses = Usage(), 0.0, 0

    def _replay(self, socket: int) -> None:
        """Send the conversation so far to ``socket``; report when the server has it all."""
        session = self._sockets[socket]
        plan = plan_replay(
            self.conversation,
            dialect=self.endpoint.dialect,
            user_audio=self._user_audio,
            max_audio_s=self.continuity.max_replay_audio_s,
        )
        self.stats.replayed_items += len(plan.items)
        self.stats.replayed_audio_items += plan.audio_items
        self.stats.dropped_audio_items += plan.dropped_audio_items
        if not plan.items:
            self._replayed(socket)
            return
        last = ItemId(plan.items[-1]["id"])

        def standby(event: ServerEvent) -> None:
            self._standby_event(event)
            if isinstance(event, ev.ItemAdded) and event.item.id == last:
                session.handler = self._standby_event
                self._replayed(socket)
            elif isinstance(event, ev.ErrorReceived) and (
                event.error.request_type == "conversation.item.create"
            ):
                log.warning("realtime.replay_item_refused", error=str(event.error))

        session.handler = standby
        for item in plan.items:
            session.create_item(item)

    def _replayed(self, socket: int) -> None:
        # A rollover may switch only if the conversation did not move meanwhile.
        moved = len(self.conversation) != self._items_before
        boundary = Boundary.NONE if moved else self._boundary()
        self._feed(self.core.replayed(socket, self.clock(), boundary=boundary))

    def _user_audio(self, item_id: str) -> NDArray[np.int16] | None:
        span = self._ranges.get(item_id)
        if span is None:
            return None
        audio, lost = self.ring.read(*span)
        return audio if not lost else None

    def _activate(self, action: Activate) -> None:
        """Make the socket carry the call (synchronous: no caller audio slips past)."""
        new = self._sockets[action.socket]
        old = self._session
        if action.reason == "start":
            resend_from = self.samples_appended  # nothing
        elif action.reason == "rollover":
            assert old is not None
            self._absorb(old)
            old.handler = self._standby_event
            # Re-send the tail, but nothing of the last turn: the old socket answered it,
            # and a scrap of it at the start of the new buffer would read as a new turn.
            tail = self.continuity.tail_ms * SAMPLES_PER_MS
            resend_from = max(self.samples_appended - tail, self._last_commit, 0)
            self._switch_sent_at = (
                old.connection.last_sent_at if old.connection is not None else None
            )
        else:
            resend_from = self._dead_from
        audio, lost = self.ring.read(resend_from, self.samples_appended)
        self.stats.lost_samples += lost
        self.audio_origin = self.samples_appended - audio.size
        self._session = new
        new.handler = self._on_event
        if new.connection is not None:
            new.connection.on_sent = self._sent
        if audio.size:
            new.append_audio(audio)
            self.stats.resent_samples += audio.size
        pending, self._pending = self._pending, []
        for call in pending:
            call(new)
        cut = self.turns.socket_replaced()
        if cut and self.on_turn is not None:
            self.on_turn(cut)
        if action.reason == "rollover":
            log.info("realtime.rollover", prepare_ms=round(action.waited_s * 1000, 1))
            self.on_reconnect("rollover")
        elif action.reason != "start":
            self._resume_turn(new, reply_cut=action.reply_cut)
            log.info(
                "realtime.reconnected",
                reason=action.reason,
                outage_ms=round(action.waited_s * 1000, 1),
            )
            self.on_reconnect(action.reason)
        self._expect()

    def _resume_turn(self, session: RealtimeSession, *, reply_cut: bool) -> None:
        """The socket died with the caller's turn unanswered, or mid-reply: answer now."""
        records = list(self.conversation)
        unanswered = bool(records) and records[-1].role == "user"
        if (unanswered or reply_cut) and not session.protocol.response_active:
            session.create_response()

    def _expect(self) -> None:
        """Tell the core whether the live socket owes us a reply (after calls of ours)."""
        session = self._session
        if session is not None and self.core.expecting(
            self.clock(), session.protocol.response_active
        ):
            self._arm()

    # ------------------------------------------------------------------ events

    def _sent(self, frame: OutboundFrame) -> None:
        if frame.samples and self._switch_sent_at is not None:
            self.stats.rollover_gaps_ms.append((self.clock() - self._switch_sent_at) * 1000)
            self._switch_sent_at = None
        if self.on_audio_sent is not None and frame.samples:
            self.on_audio_sent(frame)

    def _on_event(self, event: ServerEvent) -> None:
        if isinstance(event, ev.SpeechStopped):
            start_ms = self.turns.speech_start_ms
            start = self.sample_at_ms(start_ms) if start_ms is not None else self._last_commit
            self._ranges[event.item_id] = (start, self.sample_at_ms(event.audio_end_ms))
        elif isinstance(event, ev.InputCommitted):
            if event.item_id not in self._ranges:  # a manual commit: what came since the last
                self._ranges[event.item_id] = (self._last_commit, self.samples_appended)
            self._last_commit = self._ranges[event.item_id][1]
        actions = self.turns.receive(event)
        session = self._session
        if session is not None and self.core.receive(
            event, session.last_frame_at, reply_expected=session.protocol.response_active
        ):
            self._arm()
        self.handler(event)
        if actions and self.on_turn is not None:
            self.on_turn(actions)

    # ------------------------------------------------------------------ figures

    @property
    def current_socket(self) -> RealtimeSession | None:
        """The socket carrying the call now (``None`` during an outage)."""
        return self._session

    @property
    def usage(self) -> Usage:
        live = self._session.usage if self._session is not None else Usage()
        return self._usage + live

    @property
    def cost_usd(self) -> float:
        return self._cost + (self._session.cost_usd if self._session is not None else 0.0)

    @property
    def responses(self) -> int:
        return self._responses + (self._session.responses if self._session is not None else 0)

    @property
    def dropped_frames(self) -> int:
        """Caller audio appends dropped because a socket could not keep up (all sockets)."""
        connection = self._session.connection if self._session is not None else None
        return self._dropped + (connection.queue.dropped_frames if connection is not None else 0)

    @property
    def dropped_samples(self) -> int:
        """Caller samples in those dropped appends (all sockets)."""
        connection = self._session.connection if self._session is not None else None
        live = connection.queue.dropped_samples if connection is not None else 0
        return self._dropped_samples + live

    def caller_audio(self) -> dict[str, Any]:
        """What became of the caller's audio across sockets, in ms: re-sent to a new socket,
        lost (gone from the ring before a socket could take it), dropped (appends a socket
        could not send in time); and each outage, loss → new socket live."""
        stats = self.stats
        return {
            "caller_audio_ms": round(self.samples_appended / SAMPLES_PER_MS, 1),
            "caller_audio_resent_ms": round(stats.resent_samples / SAMPLES_PER_MS, 1),
            "caller_audio_lost_ms": round(stats.lost_samples / SAMPLES_PER_MS, 1),
            "caller_audio_dropped_ms": round(self.dropped_samples / SAMPLES_PER_MS, 1),
            "reconnect_ms": [round(x, 1) for x in stats.reconnect_ms],
        }

    @property
    def response_active(self) -> bool:
        return self._session is not None and self._session.protocol.response_active

    @property
    def active_response_id(self) -> str | None:
        return self._session.protocol.active_response_id if self._session is not None else None

    @property
    def last_frame_at(self) -> float:
        """When the current socket last read a frame (the frame being handled, in a handler)."""
        return self._session.last_frame_at if self._session is not None else self.clock()

    def sample_at_ms(self, audio_ms: int) -> int:
        """The global caller-audio sample of ``audio_ms`` on the current socket's timeline."""
        return self.audio_origin + audio_ms * SAMPLES_PER_MS

    # ------------------------------------------------------------------ calls

    def _call(self, action: Callable[[RealtimeSession], Any]) -> None:
        """Run ``action`` on the live socket, or when the next one is live."""
        if self._session is not None:
            action(self._session)
        elif self.core.state not in _ENDED:
            self._pending.append(action)

    def append_audio(self, samples: NDArray[np.int16]) -> None:
        self.ring.write(samples)
        self.samples_appended += samples.size
        if self._session is not None:
            self._session.append_audio(samples)
        # else: the audio waits in the ring and goes to the next socket

    def flush_audio(self) -> None:
        if self._session is not None:
            self._session.flush_audio()

    def commit(self) -> None:
        self._call(lambda s: s.commit())

    def create_response(self, response: Mapping[str, Any] | None = None) -> None:
        self._call(lambda s: s.create_response(response))
        self._expect()

    def cancel_response(self) -> None:
        if self._session is not None:
            self._session.cancel_response()

    def discard_response(self, response_id: str) -> None:
        if self._session is not None:
            self._session.discard_response(response_id)

    def truncate(self, item_id: str, played_ms: int, heard_text: str | None = None) -> Truncation:
        """Cut an item to what was heard. Offline, only the mirror changes (replay uses it)."""
        record = self.conversation.get(item_id)
        if record is not None and heard_text is not None:
            record.heard_text = heard_text
        if self._session is not None:
            return self._session.truncate(item_id, played_ms)
        received = record.audio_ms if record is not None else 0
        return Truncation("skip", ItemId(item_id), min(played_ms, received), received)

    def send_user_text(self, text: str) -> None:
        self._call(lambda s: s.send_user_text(text))

    def send_function_output(self, call_id: str, output: str) -> None:
        self._call(lambda s: s.send_function_output(call_id, output))
