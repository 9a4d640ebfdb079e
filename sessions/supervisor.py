"""A conversation that outlives its sockets.

:class:`SessionSupervisor` is what the bridge talks to. It owns the conversation mirror, the
caller's recent audio (:class:`~sessions.audio_log.AudioRing`) and the current
:class:`~sessions.session.RealtimeSession`, and offers the same calls; events of the current
socket reach ``handler`` synchronously. Across sockets:

- **Rollover before expiry.** From ``session.created``'s ``expires_at`` (or
  ``max_session_s``), with a margin (15 % of the lifetime, at most ``rollover_margin_s``),
  at a turn boundary (no response in flight, caller not speaking, the bridge not busy; in
  the last third of the margin, a reply still playing out no longer holds it back): a new
  socket is opened and configured with the same
  ``session.update`` and the conversation is replayed into it (``sessions.replay``) while the
  old one keeps carrying the call; then, in one synchronous step, caller audio switches to
  the new socket, starting with the last ``tail_ms`` of it re-sent (so an onset of speech
  the old socket had not yet reported is not cut), and the old socket is closed. No caller
  audio is lost; the switch gap (last append on the old socket → first on the new) is
  measured.
- **Unexpected drop, stall or expiry.** A close, a ping timeout, or no frame for
  ``stall_timeout_s`` while a response is expected, starts a reconnect with jittered
  exponential backoff. Caller audio keeps going into the ring meanwhile; once a new socket
  is configured and the conversation replayed, the caller audio since the last commit (what
  the dead server held uncommitted, plus what arrived meanwhile) is sent to it (beyond the
  ring's bound: lost, counted). If the caller's last turn was left
  unanswered, a response is asked for. A reply cut by the drop stays coherent: its text is
  replayed as far as it was received (or heard, when it was truncated).
- **Fatal errors** (a bad key refused at the handshake, quota, a deactivated account, a
  refused configuration) stop at once; so does an outage longer than ``max_outage_s``:
  :meth:`run` raises :class:`~sessions.errors.SessionFailed` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from sessions import events as ev
from sessions.audio_log import AudioRing
from sessions.connection import ConnectionOptions
from sessions.conversation import Conversation
from sessions.endpoint import Endpoint
from sessions.errors import (
    ConnectionClosed,
    ConnectionClosedOK,
    ErrorKind,
    HandshakeRejected,
    RealtimeConnectionError,
    RealtimeError,
    SessionFailed,
    SessionUpdateRejected,
    UpstreamError,
)
from sessions.events import ItemId, ServerEvent
from sessions.protocol import OutboundFrame, Truncation
from sessions.replay import plan_replay
from sessions.session import RealtimeSession
from sessions.session_config import SessionConfig
from sessions.usage import PriceTable, Usage

log = structlog.get_logger("sessions.supervisor")

EventHandler = Callable[[ServerEvent], None]
SAMPLES_PER_MS = 24


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuityOptions:
    """How a conversation survives its sockets."""

    max_session_s: float | None = None  # roll over by then even if the server allows more
    rollover_margin_s: float = 300.0  # before expires_at (shrunk for short sessions)
    tail_ms: int = 500  # caller audio re-sent to the new socket at a rollover
    resend_max_s: float = 10.0  # uncommitted caller audio re-sent after a drop, at most
    reconnect_base_s: float = 0.1
    reconnect_max_s: float = 5.0
    max_outage_s: float = 30.0
    stall_timeout_s: float = 8.0  # no frame while a response is expected
    audio_ring_s: float = 30.0
    max_replay_audio_s: float = 30.0
    replay_timeout_s: float = 10.0


@dataclass(slots=True)
class ContinuityStats:
    reconnects: Counter[str] = field(default_factory=Counter)  # by reason
    rollovers: int = 0
    rollover_gaps_ms: list[float] = field(default_factory=list)
    reconnect_ms: list[float] = field(default_factory=list)  # drop noticed → new socket live
    resent_samples: int = 0
    lost_samples: int = 0
    replayed_items: int = 0
    replayed_audio_items: int = 0
    dropped_audio_items: int = 0
    failed_attempts: int = 0


class _NotNow(Exception):
    """The turn boundary passed while the new socket was being prepared."""


class SessionSupervisor:
    def __init__(
        self,
        endpoint: Endpoint,
        config: SessionConfig,
        *,
        handler: EventHandler,
        chunk_ms: int = 20,
        options: ConnectionOptions | None = None,
        continuity: ContinuityOptions | None = None,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.handler = handler
        self.chunk_ms = chunk_ms
        self.options = options or ConnectionOptions()
        self.continuity = continuity or ContinuityOptions()
        self.prices = prices or PriceTable()
        self.clock = clock
        self._rng = rng or random.Random()
        self.conversation = Conversation()
        self.ring = AudioRing(self.continuity.audio_ring_s)
        self.samples_appended = 0
        self.audio_origin = 0  # global sample index of the current socket's first sample
        self.stats = ContinuityStats()
        #: Called after each caller-audio append is written to a socket.
        self.on_audio_sent: Callable[[OutboundFrame], None] | None = None
        #: Called when a new socket took over: (reason: rollover | dropped | expired | stalled).
        self.on_reconnect: Callable[[str], None] = lambda _reason: None
        #: The bridge is mid-turn (playing a reply, awaiting one): not a moment to switch.
        self.turn_busy: Callable[[], bool] = lambda: False
        self._session: RealtimeSession | None = None
        self._usage = Usage()
        self._cost = 0.0
        self._responses = 0
        self._dropped = 0  # caller appends dropped on sockets that are gone
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finished: asyncio.Future[None] | None = None
        self._closing = False
        self._fatal: UpstreamError | None = None
        self._expired = False
        self._stalled = False
        self._caller_speaking = False
        self._speech_start: int | None = None
        self._last_commit = 0
        self._ranges: dict[str, tuple[int, int]] = {}  # user item → caller samples
        self._pending: list[Callable[[RealtimeSession], None]] = []  # calls made offline
        self._switch_sent_at: float | None = None  # last append on the retired socket
        self._cut_reply = False  # a response was in flight when the socket died

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open and configure the first socket (errors propagate: nothing to keep alive)."""
        self._finished = asyncio.get_running_loop().create_future()
        session = await self._open()
        self._activate(session, resend_from=self.samples_appended)
        self._spawn(self._watch(), "realtime-watchdog")

    async def run(self) -> None:
        """Until :meth:`close`; raises :class:`SessionFailed` if the conversation cannot go on."""
        assert self._finished is not None, "start() first"
        await asyncio.shield(self._finished)

    async def close(self, reason: str = "") -> None:
        """End the conversation: close the socket(s) and stop every background task."""
        self._closing = True
        session, self._session = self._session, None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if session is not None:
            self._absorb(session)
            await session.close(1000, reason)
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _fail(self, reason: str, *, fatal: bool) -> None:
        log.error("realtime.session_failed", reason=reason, fatal=fatal)
        if self._finished is not None and not self._finished.done():
            self._finished.set_exception(SessionFailed(reason, fatal=fatal))
            self._finished.exception()  # retrieved by run(); silence "never retrieved"
        self._closing = True
        session, self._session = self._session, None
        if session is not None:
            self._absorb(session)
            self._spawn(session.close(1000, "giving up"), "realtime-close")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ sockets

    async def _open(self) -> RealtimeSession:
        session = RealtimeSession(
            self.endpoint,
            self.config,
            handler=self._standby_event,
            chunk_ms=self.chunk_ms,
            options=self.options,
            prices=self.prices,
            conversation=self.conversation,
            clock=self.clock,
        )
        await session.start()
        reader = self._spawn(session.run(), "realtime-reader")
        reader.add_done_callback(lambda task: self._reader_done(session, task))
        return session

    def _standby_event(self, event: ServerEvent) -> None:
        """Events of a socket being prepared: only errors matter, nothing reaches the bridge."""
        if isinstance(event, ev.ErrorReceived) and event.error.kind is ErrorKind.FATAL:
            log.warning("realtime.standby_error", code=event.error.code)

    def _activate(self, session: RealtimeSession, *, resend_from: int) -> None:
        """Make ``session`` the one carrying the call (synchronous: no audio slips past)."""
        audio, lost = self.ring.read(resend_from, self.samples_appended)
        self.stats.lost_samples += lost
        self.audio_origin = self.samples_appended - audio.size
        self._session = session
        session.handler = self._on_event
        if session.connection is not None:
            session.connection.on_sent = self._sent
        if audio.size:
            session.append_audio(audio)
            self.stats.resent_samples += audio.size
        pending, self._pending = self._pending, []
        for call in pending:
            call(session)
        self._expired = self._stalled = False
        # A new socket's VAD starts fresh: speech it hears in the re-sent audio is reported
        # again; nothing carries over from the old one.
        self._caller_speaking = False
        self._speech_start = None
        self._spawn(self._rollover(session), "realtime-rollover")

    def _reader_done(self, session: RealtimeSession, task: asyncio.Task[Any]) -> None:
        if self._closing or session is not self._session or task.cancelled():
            return  # a retired or standby socket, or we are closing: handled elsewhere
        exc = task.exception()
        if not isinstance(exc, ConnectionClosed):
            self._fail(f"the Realtime reader failed: {exc!r}", fatal=False)
            return
        self._absorb(session)
        # The server loses its uncommitted input buffer with the socket, and frames written
        # just before a drop may never have arrived: rebuild the buffer on the next socket
        # from the last commit (bounded by resend_max_s and by the ring).
        dead_from = max(
            self._last_commit,
            self.audio_origin,
            self.samples_appended - int(self.continuity.resend_max_s * 24_000),
        )
        self._cut_reply = session.protocol.response_active
        self._session = None
        self._spawn(session.close(1006, "lost"), "realtime-close-dead")
        if self._fatal is not None:
            self._fail(str(self._fatal), fatal=True)
            return
        if self._expired or (isinstance(exc, ConnectionClosedOK) and exc.code == 1001):
            reason = "expired"
        elif self._stalled or (exc.code == 1011 and "ping timeout" in exc.reason):
            reason = "stalled"
        else:
            reason = "dropped"
        log.warning("realtime.socket_lost", reason=reason, code=exc.code, detail=exc.reason)
        self._spawn(self._recover(reason, dead_from, self.clock()), "realtime-recover")

    def _absorb(self, session: RealtimeSession) -> None:
        """Keep a socket's usage figures when it goes away."""
        if session.connection is not None:
            self._dropped += session.connection.queue.dropped_frames
            session.connection.queue.dropped_frames = 0
        self._usage = self._usage + session.usage
        self._cost += session.cost_usd
        self._responses += session.responses
        session.usage, session.cost_usd, session.responses = Usage(), 0.0, 0

    async def _recover(self, reason: str, resend_from: int, since: float) -> None:
        options = self.continuity
        delay = options.reconnect_base_s
        while not self._closing:
            try:
                session = await self._open()
                await self._replay(session)
            except HandshakeRejected as exc:
                if exc.fatal:
                    self._fail(str(exc), fatal=True)
                    return
                self._note_failed_attempt(exc)
            except SessionUpdateRejected as exc:
                self._fail(f"the new socket refused the configuration: {exc}", fatal=True)
                return
            except (RealtimeConnectionError, TimeoutError) as exc:
                self._note_failed_attempt(exc)
            else:
                self._activate(session, resend_from=resend_from)
                self.stats.reconnects[reason] += 1
                self.stats.reconnect_ms.append((self.clock() - since) * 1000)
                self._resume_turn(session)
                log.info(
                    "realtime.reconnected",
                    reason=reason,
                    outage_ms=round((self.clock() - since) * 1000, 1),
                )
                self.on_reconnect(reason)
                return
            if self.clock() - since > options.max_outage_s:
                self._fail(
                    f"the Realtime API was unreachable for over {options.max_outage_s:g} s",
                    fatal=False,
                )
                return
            await asyncio.sleep(self._rng.uniform(0, delay))  # full jitter
            delay = min(delay * 2, options.reconnect_max_s)

    def _note_failed_attempt(self, exc: BaseException) -> None:
        self.stats.failed_attempts += 1
        log.warning("realtime.reconnect_failed", error=str(exc))

    async def _replay(self, session: RealtimeSession) -> None:
        """Send the conversation so far to ``session``; wait until the server has it all."""
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
            return
        last = ItemId(plan.items[-1]["id"])
        done = asyncio.get_running_loop().create_future()

        def standby(event: ServerEvent) -> None:
            self._standby_event(event)
            if done.done():
                return
            if isinstance(event, ev.ItemAdded) and event.item.id == last:
                done.set_result(None)
            elif isinstance(event, ev.ErrorReceived) and (
                event.error.request_type == "conversation.item.create"
            ):
                log.warning("realtime.replay_item_refused", error=str(event.error))

        session.handler = standby
        for item in plan.items:
            session.create_item(item)
        async with asyncio.timeout(self.continuity.replay_timeout_s):
            await done

    def _user_audio(self, item_id: str) -> NDArray[np.int16] | None:
        span = self._ranges.get(item_id)
        if span is None:
            return None
        audio, lost = self.ring.read(*span)
        return audio if not lost else None

    def _resume_turn(self, session: RealtimeSession) -> None:
        """The socket died with the caller's turn unanswered, or mid-reply: answer now.

        A cut reply's received text was replayed, so the model carries on from what the
        caller heard instead of starting over blind.
        """
        records = list(self.conversation)
        unanswered = bool(records) and records[-1].role == "user"
        if (unanswered or self._cut_reply) and not session.protocol.response_active:
            session.create_response()
        self._cut_reply = False

    # ------------------------------------------------------------------ rollover

    def _rollover_window(self, session: RealtimeSession) -> tuple[float, float] | None:
        """(start looking for a boundary, accept a looser one from) in monotonic time."""
        now = self.clock()
        started = session.connected_at or now
        deadline: float | None = None
        if session.expires_at is not None:
            deadline = now + session.expires_at - time.time()
        if self.continuity.max_session_s is not None:
            cap = started + self.continuity.max_session_s
            deadline = cap if deadline is None else min(deadline, cap)
        if deadline is None:
            return None
        lifetime = deadline - started
        margin = min(self.continuity.rollover_margin_s, max(lifetime * 0.15, 2.0))
        if lifetime - margin < 1.0:
            margin = lifetime / 2
        return deadline - margin, deadline - margin / 3

    def _at_boundary(self, session: RealtimeSession, *, strict: bool = True) -> bool:
        """Between turns: no response in flight, the caller silent; ``strict`` also waits
        for the bridge (the reply played out). Near expiry a loose boundary will do: a reply
        still playing out is replayed as text and plays on."""
        server_busy = (
            session.protocol.response_active
            or session.protocol.create_held
            or self._caller_speaking
        )
        return not server_busy and not (strict and self.turn_busy())

    async def _rollover(self, session: RealtimeSession) -> None:
        window = self._rollover_window(session)
        if window is None:
            return
        start, loosen = window
        await asyncio.sleep(max(start - self.clock(), 0.0))
        while session is self._session and not self._closing:
            strict = self.clock() < loosen
            if self._at_boundary(session, strict=strict):
                try:
                    await self._switch(session, strict=strict)
                    return
                except _NotNow:
                    pass
                except (RealtimeError, TimeoutError) as exc:
                    # The old socket carries on; if it expires first, recovery takes over.
                    log.warning("realtime.rollover_failed", error=str(exc))
                    self._note_failed_attempt(exc)
                    await asyncio.sleep(1.0)
            await asyncio.sleep(0.05)

    async def _switch(self, old: RealtimeSession, *, strict: bool = True) -> None:
        started = self.clock()
        items_before = len(self.conversation)
        new = await self._open()
        try:
            await self._replay(new)
        except BaseException:
            await new.close(1000, "rollover abandoned")
            raise
        if (
            old is not self._session
            or not self._at_boundary(old, strict=strict)
            or len(self.conversation) != items_before
        ):
            await new.close(1000, "rollover postponed")
            raise _NotNow
        # From here to the end of _activate: synchronous, no caller audio can slip by.
        self._absorb(old)
        old.handler = self._standby_event
        last_sent = old.connection.last_sent_at if old.connection is not None else None
        # Re-send the tail, but nothing of the last turn: the old socket answered it, and a
        # scrap of it at the start of the new buffer would read as a new (tiny) turn.
        tail = self.continuity.tail_ms * SAMPLES_PER_MS
        self._activate(new, resend_from=max(self.samples_appended - tail, self._last_commit, 0))
        self._switch_sent_at = last_sent
        self.stats.rollovers += 1
        log.info("realtime.rollover", prepare_ms=round((self.clock() - started) * 1000, 1))
        self.on_reconnect("rollover")
        self._spawn(old.close(1000, "rollover"), "realtime-retire")

    # ------------------------------------------------------------------ watchdog

    async def _watch(self) -> None:
        """Abort a socket that went silent while a response is expected (a stalled server)."""
        while not self._closing:
            await asyncio.sleep(0.25)
            session = self._session
            if session is None or session.connection is None:
                continue
            if not session.protocol.response_active:
                continue
            silent = self.clock() - session.last_frame_at
            if silent > self.continuity.stall_timeout_s:
                log.warning("realtime.stalled", silent_s=round(silent, 1))
                self._stalled = True
                session.connection.abort()

    # ------------------------------------------------------------------ events

    def _sent(self, frame: OutboundFrame) -> None:
        if frame.samples and self._switch_sent_at is not None:
            self.stats.rollover_gaps_ms.append((self.clock() - self._switch_sent_at) * 1000)
            self._switch_sent_at = None
        if self.on_audio_sent is not None and frame.samples:
            self.on_audio_sent(frame)

    def _on_event(self, event: ServerEvent) -> None:
        if isinstance(event, ev.SpeechStarted):
            self._caller_speaking = True
            self._speech_start = self.sample_at_ms(event.audio_start_ms)
        elif isinstance(event, ev.SpeechStopped):
            self._caller_speaking = False
            start = self._speech_start if self._speech_start is not None else self._last_commit
            self._ranges[event.item_id] = (start, self.sample_at_ms(event.audio_end_ms))
            self._speech_start = None
        elif isinstance(event, ev.InputCommitted):
            if event.item_id not in self._ranges:  # a manual commit: what came since the last
                self._ranges[event.item_id] = (self._last_commit, self.samples_appended)
            self._last_commit = self._ranges[event.item_id][1]
        elif isinstance(event, ev.ErrorReceived):
            if event.error.code == "session_expired":
                self._expired = True
            elif event.error.kind is ErrorKind.FATAL:
                self._fatal = event.error
        self.handler(event)

    # ------------------------------------------------------------------ figures

    @property
    def session(self) -> RealtimeSession | None:
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
        elif not self._closing:
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
