"""The simulator's I/O: handshake, one pump per connection, pacing, timers, faults.

Each accepted connection runs three tasks around its ``ModelSession``:

- the reader feeds client frames to the model (in arrival order) and queues what comes out;
- the pacer asks the model for the next step of the active response when the pacing clock
  says so: after ``latency_ms`` of think time, step k leaves at ``start + media_ms / pace``;
- the writer sends queued frames in order, applying ``delay`` and ``stall`` faults, and
  performs close/abort actions queued behind frames.

Handshake: ``GET /v1/realtime`` and ``/openai/v1/realtime`` (query ``model``, ``call_id`` or
``intent``) speak GA; ``/openai/realtime?api-version=...&deployment=...`` (Azure preview)
speaks the beta dialect. Keys come from ``Authorization: Bearer``, ``api-key``, the browser
subprotocol ``openai-insecure-api-key.<key>`` or an ``api-key`` query parameter. Refusals are
plain HTTP responses with an OpenAI-style JSON error body. ``OpenAI-Beta: realtime=v1`` on a
GA path gets ``beta_api_shape_disabled`` and close 4000. The server sends no keepalive pings
of its own (clients ping; it answers, except while stalled).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from .config import SimulatorConfig
from .dialect import BETA, GA
from .faults import FaultKind, FaultPlan, FaultSpec, Phase
from .journal import Journal, has_observers, notify
from .model import (
    AudioAppended,
    CallerSpeaking,
    ItemCreated,
    ModelSession,
    ResponseQueued,
    SessionUpdated,
)
from .stats import SimulatorStats
from .wire import ERRORS, event_id, known_error

MAX_MESSAGE: Final = 32 * 2**20
"""Largest client message accepted (an append may carry 15 MiB of audio, 20 MiB as base64)."""

CLOSE_TIMEOUT: Final = 2.0
_UNKNOWN_EVENTS: Final = (
    {"type": "response.future_feature.delta", "response_id": "resp_future", "delta": "?"},
    {"type": "session.future_notice", "notice": {"level": "info", "text": "simulated"}},
    {"type": "conversation.item.annotated", "item_id": "item_future", "annotation": {}},
)


@dataclass(slots=True)
class _Handshake:
    number: int
    dialect: str
    model: str
    path: str
    refuse_beta: bool = False
    deferred: list[FaultSpec] = field(default_factory=list)


class _SimConnection(ServerConnection):
    """A server connection that can go silent: while muted, even pongs are held back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.muted = False
        self.handshake_info: _Handshake | None = None
        self._held: list[bytes] = []

    def send_data(self) -> None:
        if self.muted:  # a frozen server answers pings (and closes) late, not never
            self._held.extend(self.protocol.data_to_send())
            return
        super().send_data()

    def mute(self) -> None:
        """Stop writing anything to the socket."""
        self.muted = True

    def unmute(self) -> None:
        """Write what was held back (pongs, a close frame), then carry on."""
        self.muted = False
        held, self._held = self._held, []
        if self.transport.is_closing():
            return
        for data in held:
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()


def _select_subprotocol(connection: ServerConnection, offered: Any) -> Subprotocol | None:
    del connection
    return Subprotocol("realtime") if "realtime" in offered else None


def _mask(key: str) -> str:
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"


def _http_error(status: int, message: str, code: str | None = None) -> Response:
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    ).encode()
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status, reason, headers, body)


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


class Simulator:
    """A local Realtime API server; use ``async with Simulator(config) as sim: sim.url``."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        journal: Path | str | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host = host
        self._requested_port = port
        self.stats = SimulatorStats()
        self.faults = FaultPlan(self.config.faults)
        self._journal_path = Path(journal) if journal is not None else None
        self.journal: Journal | None = None
        self._server: Server | None = None
        self._handshakes = 0
        self._runners: set[_Connection] = set()
        self._closing = asyncio.Event()
        self.log = structlog.get_logger("sessions.simulator")

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._journal_path is not None:
            self.journal = Journal(self._journal_path)
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            compression=None,
            max_size=MAX_MESSAGE,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            open_timeout=None,
            create_connection=_SimConnection,
        )
        self.log.info("sim.started", url=self.url, behavior=self.config.behavior.value)

    async def close(self) -> None:
        """Stop: close every connection with 1001 (going away) and release the port."""
        self._closing.set()
        for runner in list(self._runners):
            runner.end_stall()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.journal is not None:
            self.journal.close()
        self.log.info("sim.stopped", connections=self.stats.connections)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The bound port (the free one picked when asked for port 0)."""
        if self._server is None:
            return self._requested_port
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/v1``; clients append ``/realtime?model=...``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/v1"

    # -- faults ----------------------------------------------------------------------------

    def fault_fired(self, spec: FaultSpec, number: int, dialect: str) -> None:
        """Count, log and journal a fault that fires now."""
        self.stats.faults_fired[str(spec)] += 1
        self.log.info("sim.fault.fired", conn=number, fault=str(spec))
        if self.journal is not None:
            self.journal.note(number, dialect, {"fault": str(spec)})

    # -- handshake -------------------------------------------------------------------------

    def _refuse(self, number: int, status: int, message: str, code: str | None) -> Response:
        self.stats.rejected_handshakes[status] += 1
        self.log.info("sim.handshake.refused", conn=number, status=status, code=code)
        if self.journal is not None:
            self.journal.note(number, GA, {"refused": status, "code": code})
        return _http_error(status, message, code)

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        self._handshakes += 1
        number = self._handshakes
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        offered = [
            p.strip()
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for p in value.split(",")
        ]
        if path in ("/v1/realtime", "/openai/v1/realtime"):
            dialect = GA
            model = query.get("model") or (
                "gpt-realtime" if ("call_id" in query or "intent" in query) else ""
            )
            if not model:
                return self._refuse(
                    number,
                    400,
                    "Missing required parameter: 'model'.",
                    "missing_required_parameter",
                )
        elif path == "/openai/realtime":
            dialect = BETA
            model = query.get("deployment", "")
            if not model or "api-version" not in query:
                missing = "deployment" if not model else "api-version"
                return self._refuse(
                    number,
                    400,
                    f"Missing required parameter: '{missing}'.",
                    "missing_required_parameter",
                )
        else:
            return self._refuse(number, 404, f"Invalid URL (GET {url.path})", "not_found")

        key = None
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        key = key or request.headers.get("api-key") or query.get("api-key")
        for protocol in offered:
            if protocol.startswith("openai-insecure-api-key."):
                key = key or protocol.removeprefix("openai-insecure-api-key.")
        if not key and self.config.api_key is not None:
            return self._refuse(
                number,
                401,
                "You didn't provide an API key. You need to provide your API key in an"
                " Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                None,
            )
        if self.config.api_key is not None and key != self.config.api_key:
            return self._refuse(
                number,
                401,
                f"Incorrect API key provided: {_mask(key or '')}. You can find your API key at"
                " https://platform.openai.com/account/api-keys.",
                "invalid_api_key",
            )
        beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "") or (
            "openai-beta.realtime-v1" in offered
        )
        info = _Handshake(number, dialect, model, url.path, refuse_beta=beta and dialect == GA)
        for spec in self.faults.take(Phase.CONNECT, kind=FaultKind.REJECT):
            self.fault_fired(spec, number, dialect)
            return self._refuse(number, spec.status, f"Simulated refusal ({spec}).", None)
        for spec in self.faults.take(Phase.CONNECT):
            self.fault_fired(spec, number, dialect)
            if spec.kind is FaultKind.TCP_CLOSE:
                connection.transport.abort()
                return _http_error(500, "simulated TCP close")
            if spec.kind is FaultKind.STALL:
                with contextlib.suppress(TimeoutError):
                    seconds = None if math.isinf(spec.seconds) else spec.seconds
                    await asyncio.wait_for(self._closing.wait(), seconds)
                if self._closing.is_set():
                    return _http_error(503, "Server is shutting down.")
                continue
            info.deferred.append(spec)
        if isinstance(connection, _SimConnection):
            connection.handshake_info = info
        return None

    # -- connections -----------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _SimConnection)
        info = connection.handshake_info
        assert info is not None
        runner = _Connection(self, connection, info)
        self._runners.add(runner)
        self.stats.connections += 1
        self.stats.active_connections += 1
        try:
            await runner.run()
        finally:
            self.stats.active_connections -= 1
            self._runners.discard(runner)


@dataclass(slots=True)
class _Frame:
    data: str | bytes
    due: float
    event: dict[str, Any] | None = None
    """The genuine event (clean of fault decorations), for observers; ``None`` for junk."""
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class _Action:
    kind: str  # close | abort | stall
    code: int = 1000
    reason: str = ""
    seconds: float = math.inf


class _Connection:
    """One accepted WebSocket: reader, pacer and writer around a ``ModelSession``."""

    def __init__(self, sim: Simulator, ws: _SimConnection, info: _Handshake) -> None:
        self.sim = sim
        self.ws = ws
        self.info = info
        self.number = info.number
        self.dialect = info.dialect
        self.core = ModelSession(
            sim.config, model=info.model, dialect=info.dialect, now=time.time(), stats=sim.stats
        )
        self.log = sim.log.bind(conn=info.number)
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[_Frame | _Action] = asyncio.Queue()
        self._wake_pacer = asyncio.Event()
        self._unstalled = asyncio.Event()
        self._unstalled.set()
        self._stall_timer: asyncio.TimerHandle | None = None
        self._delay_s = 0.0
        self._unknown_left = 0
        self._unknown_sent = 0
        self._odd_deltas = False
        self._audio_deltas = 0
        self._idle_armed = False
        self._reply_armed = False  # a reply completed: after_reply fires when next idle
        self._closing = False
        self._in_close = False
        self._opened = time.monotonic()
        self._responses = 0
        self._items: Counter[str] = Counter()

    # -- main ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes."""
        self.log.info(
            "sim.connection.opened",
            path=self.info.path,
            model=self.info.model,
            dialect=self.dialect,
            subprotocol=self.ws.subprotocol,
        )
        journal = self.sim.journal
        if journal is not None:
            journal.note(self.number, self.dialect, {"open": self.info.path})
        writer = asyncio.create_task(self._write_loop())
        pacer = asyncio.create_task(self._pace_loop())
        for task in (writer, pacer):
            task.add_done_callback(self._task_done)
        expiry = self._loop.call_later(self.sim.config.expire_after_s, self._expire)
        try:
            if self.info.refuse_beta:
                self._send_event(known_error("beta_api_shape_disabled"))
                self.sim.stats.errors_sent["beta_api_shape_disabled"] += 1
                info = ERRORS["beta_api_shape_disabled"]
                self._queue_action(_Action("close", info.close_code or 4000, info.message[:120]))
            else:
                for spec in self.info.deferred:
                    self._fire(spec)
                if not self._closing:
                    self.core.start()
                    self._pump()
                    self._checkpoint(Phase.ANY)
            await self._read_loop()
        finally:
            expiry.cancel()
            self.end_stall()
            pacer.cancel()
            if not self._in_close:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await asyncio.gather(pacer, writer, return_exceptions=True)
            self.log.info(
                "sim.connection.closed",
                code=None if self.ws.close_code is None else int(self.ws.close_code),
                reason=self.ws.close_reason,
                seconds=round(time.monotonic() - self._opened, 3),
                responses=self._responses,
                items_created=dict(self._items),
            )
            if journal is not None:
                journal.note(
                    self.number,
                    self.dialect,
                    {"close": self.ws.close_code, "reason": self.ws.close_reason},
                )

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A writer or pacer that dies of a bug takes the connection down, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        self.log.error("sim.connection.failed", exc_info=task.exception())
        self.ws.transport.abort()

    async def _read_loop(self) -> None:
        journal = self.sim.journal
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                self.sim.stats.frames_in += 1
                if not self._unstalled.is_set():
                    continue  # stalled: read and ignored
                if isinstance(message, bytes):
                    if journal is not None:
                        journal.raw_in(self.number, self.dialect, repr(message[:200]))
                    self.core.receive_binary(message)
                else:
                    event = self.core.receive_text(message)
                    if journal is not None:
                        self._journal_in(journal, message, event)
                self._pump()

    def _journal_in(self, journal: Journal, text: str, event: dict[str, Any] | None) -> None:
        if event is None:
            journal.raw_in(self.number, self.dialect, text)
            return
        if event.get("type") == "input_audio_buffer.append" and isinstance(event.get("audio"), str):
            audio: str = event["audio"]
            size = len(audio) * 3 // 4 - audio[-2:].count("=")
            event = {"type": "input_audio_buffer.append", "bytes": size}
        journal.frame_in(self.number, self.dialect, event)

    # -- model output ----------------------------------------------------------------------

    def _pump(self) -> None:
        """Queue what the model produced and act on its notes."""
        for event in self.core.events_to_send():
            self._send_event(event)
        for note in self.core.notes():
            if isinstance(note, ResponseQueued):
                self._responses += 1
                self._wake_pacer.set()
            elif isinstance(note, CallerSpeaking):
                self._checkpoint(Phase.CALLER_SPEAKING)
            elif isinstance(note, SessionUpdated):
                instructions = note.instructions
                self.log.info(
                    "sim.session.updated",
                    keys=list(note.keys),
                    instructions_sha=hashlib.sha256(instructions.encode()).hexdigest()[:10],
                    instructions_head=instructions[:60],
                )
                if self.core.idle:
                    self._checkpoint(Phase.IDLE)
                else:
                    self._idle_armed = True
            elif isinstance(note, AudioAppended):
                if self._idle_armed:
                    self._idle_armed = False
                    self._checkpoint(Phase.IDLE)
                if self._reply_armed:
                    self._reply_armed = False
                    self._checkpoint(Phase.AFTER_REPLY)
            elif isinstance(note, ItemCreated):
                self._items[note.item_type] += 1
                self.log.info(
                    "sim.item.created",
                    item_type=note.item_type,
                    role=note.role,
                    counts=dict(self._items),
                )

    def _send_event(self, event: dict[str, Any]) -> None:
        if self._closing:
            return
        due = self._loop.time() + self._delay_s
        if self._unknown_left > 0:
            self._unknown_left -= 1
            self._unknown_sent += 1
            if self._unknown_sent % 2 == 1:
                self._send_unknown("unknown", due)
            else:  # a real event with a field from the future
                decorated = {**event, "x_future_field": {"since": "2027-01-01"}}
                self._queue.put_nowait(_Frame(_dumps(decorated), due, event, "unknown"))
                return
        self._queue.put_nowait(_Frame(_dumps(event), due, event))
        if event["type"] == "response.done" and event["response"].get("status") == "completed":
            self._reply_armed = True
        if self._odd_deltas and event["type"].endswith("audio.delta"):
            self._audio_deltas += 1
            if self._audio_deltas % 5 == 0:
                self._send_unknown("odd_deltas", due)

    def _send_unknown(self, fault: str, due: float) -> None:
        template = _UNKNOWN_EVENTS[self._unknown_sent % len(_UNKNOWN_EVENTS)]
        frame = {**template, "event_id": event_id()}
        self._queue.put_nowait(_Frame(_dumps(frame), due, None, fault))

    def _send_malformed(self, count: int) -> None:
        due = self._loop.time() + self._delay_s
        valid = _dumps({"type": "rate_limits.updated", "event_id": event_id(), "rate_limits": []})
        junk: list[str | bytes] = [
            "this is not JSON {",
            b"\x00\x01binary frame from the simulator",
            _dumps({"type": "response.output_audio.delta", "event_id": event_id()}),
            _dumps(
                {
                    "type": "input_audio_buffer.speech_started",
                    "event_id": event_id(),
                    "audio_start_ms": "soon",
                    "item_id": 42,
                }
            ),
            valid[: len(valid) // 2],
        ]
        for index in range(count):
            self._queue.put_nowait(_Frame(junk[index % len(junk)], due, None, "malformed"))

    def _queue_action(self, action: _Action) -> None:
        if self._closing:
            return
        if action.kind in ("close", "abort"):
            self._closing = True
        self._queue.put_nowait(action)

    # -- faults and timers -----------------------------------------------------------------

    def _checkpoint(self, phase: Phase) -> None:
        if self._closing:
            return
        for spec in self.sim.faults.take(phase):
            self._fire(spec)

    def _fire(self, spec: FaultSpec) -> None:
        self.sim.fault_fired(spec, self.number, self.dialect)
        kind = spec.kind
        if kind is FaultKind.DROP:
            self._queue_action(_Action("close", 1011, "simulated drop"))
        elif kind is FaultKind.TCP_CLOSE:
            self._queue_action(_Action("abort"))
        elif kind is FaultKind.STALL:
            self._queue_action(_Action("stall", seconds=spec.seconds))
        elif kind is FaultKind.DELAY:
            self._delay_s = spec.delay_ms / 1000.0
        elif kind is FaultKind.MALFORMED:
            self._send_malformed(spec.frames)
        elif kind is FaultKind.UNKNOWN:
            self._unknown_left = spec.frames - 1
            self._unknown_sent += 1
            self._send_unknown("unknown", self._loop.time() + self._delay_s)
        elif kind is FaultKind.EXPIRE or (
            kind is FaultKind.ERROR and spec.code == "session_expired"
        ):
            self._expire()
        elif kind is FaultKind.ERROR:
            close_code = self.core.send_error(spec.code)
            self._pump()
            if close_code is not None:
                self._queue_action(_Action("close", close_code, spec.code))
        elif kind is FaultKind.ODD_DELTAS:
            self._odd_deltas = True
            self.core.odd_deltas = True

    def _expire(self) -> None:
        if self._closing:
            return
        message = self.core.expire()
        self._pump()
        self._queue_action(_Action("close", 1001, message))

    def end_stall(self) -> None:
        """Resume sending (end of a ``stall`` fault, or shutdown)."""
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if self.ws.muted:
            self.ws.unmute()
        self._unstalled.set()

    def _start_stall(self, seconds: float) -> None:
        self.ws.mute()
        self._unstalled.clear()
        if not math.isinf(seconds):
            self._stall_timer = self._loop.call_later(seconds, self.end_stall)

    # -- writer and pacer ------------------------------------------------------------------

    async def _write_loop(self) -> None:
        journal = self.sim.journal
        stats = self.sim.stats
        while True:
            item = await self._queue.get()
            await self._unstalled.wait()
            if isinstance(item, _Action):
                if item.kind == "stall":
                    self._start_stall(item.seconds)
                    continue
                if item.kind == "abort":
                    self.ws.transport.abort()
                    return
                self._in_close = True
                await self.ws.close(item.code, item.reason)
                return
            wait = item.due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self.ws.send(item.data)
            except ConnectionClosed:
                return
            stats.frames_out += 1
            if item.event is not None and has_observers():
                notify(self.dialect, item.event)
            if journal is not None:
                if isinstance(item.data, bytes):
                    journal.binary_out(self.number, self.dialect, item.data, fault=item.fault or "")
                else:
                    journal.frame_out(self.number, self.dialect, item.data, fault=item.fault)

    async def _pace_loop(self) -> None:
        config = self.sim.config
        latency_s = config.latency_ms / 1000.0
        while True:
            await self._wake_pacer.wait()
            self._wake_pacer.clear()
            while (response_id := self.core.active_response_id) is not None:
                if latency_s > 0:
                    await asyncio.sleep(latency_s)
                    if self.core.active_response_id != response_id:
                        continue
                start = self._loop.time()
                media_ms = 0.0
                while self.core.active_response_id == response_id:
                    step = self.core.next_step()
                    self._pump()
                    if step is None or step.done:
                        break
                    if step.first_audio:
                        self._checkpoint(Phase.AGENT_SPEAKING)
                    media_ms += step.media_ms
                    if math.isinf(config.pace):
                        await asyncio.sleep(0)
                    else:
                        target = start + media_ms / 1000.0 / config.pace
                        await asyncio.sleep(max(0.0, target - self._loop.time()))
