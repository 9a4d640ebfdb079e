"""One WebSocket to a Realtime endpoint: a writer draining the bounded outbound queue, and
a ``recv`` for the reader.

The socket is opened with compression off (audio is base64 noise to deflate), a message size
limit raised for 15 MiB appends and large ``conversation.item.retrieved`` replies, ping/pong
keepalive (a stalled server is detected by a ping timeout; websockets' own, unless a supervisor
drives it: see ``ping``) and a connect timeout.
``websockets`` exceptions are translated at this boundary into the project's tree
(``sessions.errors``): a refused upgrade becomes :class:`HandshakeRejected` (401/403 are
fatal), a timeout :class:`ConnectTimeout`, a close :class:`ConnectionClosedOK` (1000/1001)
or :class:`ConnectionClosedError`. No message ever includes the request headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
import websockets
from websockets.asyncio.client import ClientConnection, connect

from sessions.endpoint import Endpoint
from sessions.errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectTimeout,
    HandshakeRejected,
    RealtimeConnectionError,
)
from sessions.outbound import OutboundQueue
from sessions.protocol import OutboundFrame
from sessions.redaction import redact

log = structlog.get_logger("sessions.connection")

MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # a 15 MiB append is 20 MiB of base64
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOptions:
    """How a socket is opened and kept alive."""

    connect_timeout: float = 10.0
    # Keepalive: websockets' own on a bare session; a supervisor turns that off and has its
    # continuity core ping at the same interval, so its timeouts run on the injected clock.
    # Tuned on an impaired link (``bridge bench --impairment --uplink``): a pong queued
    # behind a lossy TCP stream arrives within 5 s unless one segment was lost five times
    # in a row (RTO backoff: 0.25 + 0.5 + 1 + 2 s...), so 5 s tells a dead path from a slow
    # one; a ping every 2.5 s finds it 2.5-7.5 s after it died (it was 10-20 s).
    ping_interval: float | None = 2.5
    ping_timeout: float | None = 5.0
    close_timeout: float = 2.0
    max_queued_audio: int = 1500  # appends held at most (30 s at 20 ms), for memory
    # An append waiting longer means the socket can't keep up (a bare session drops it; a
    # supervisor keeps it and replaces the socket instead: see ``sessions.supervisor``).
    max_audio_age_s: float = 2.0
    user_agent: str = "realtime-bridge"


class Connection:
    """An open WebSocket with its outbound queue; create with :meth:`open`."""

    def __init__(
        self,
        ws: ClientConnection,
        endpoint: Endpoint,
        options: ConnectionOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ws = ws
        self.endpoint = endpoint
        self.options = options
        self._clock = clock
        self.queue = OutboundQueue(options.max_queued_audio, options.max_audio_age_s)
        #: Called after each frame has been written to the socket (latency accounting).
        self.on_sent: Callable[[OutboundFrame], None] | None = None
        self.frames_sent = 0
        self.samples_sent = 0
        self.last_sent_at: float | None = None  # ``clock`` time of the last audio append sent
        self._writer = asyncio.get_running_loop().create_task(self._write(), name="realtime-writer")
        self._closed: ConnectionClosed | None = None

    @classmethod
    async def open(
        cls,
        endpoint: Endpoint,
        options: ConnectionOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Connection:
        """Connect and complete the WebSocket handshake, or raise from our tree."""
        options = options or ConnectionOptions()
        host = endpoint.host
        log.debug("realtime.connect.started", host=host, provider=endpoint.provider)
        try:
            ws = await connect(
                endpoint.url,
                additional_headers=list(endpoint.headers),
                compression=None,
                open_timeout=options.connect_timeout,
                ping_interval=options.ping_interval,
                ping_timeout=options.ping_timeout,
                close_timeout=options.close_timeout,
                max_size=MAX_MESSAGE_BYTES,
                max_queue=64,
                user_agent_header=options.user_agent,
                proxy=None if host.split(":")[0] in _LOOPBACK else True,
            )
        except websockets.InvalidStatus as exc:
            response = exc.response
            raise HandshakeRejected(
                response.status_code, host, _error_detail(response.body, endpoint)
            ) from None
        except TimeoutError:
            raise ConnectTimeout(host, options.connect_timeout) from None
        except websockets.InvalidMessage as exc:
            status = _plain_http_status(exc)
            if status is not None:  # a plain HTTP/1.0 server answered, e.g. with a 404
                raise HandshakeRejected(status, host, "a plain HTTP server answered") from None
            raise RealtimeConnectionError(
                f"{host}: cannot connect ({_scrub(_invalid_message(exc), endpoint)})"
            ) from None
        except ConnectionRefusedError:
            raise RealtimeConnectionError(
                f"{host}: cannot connect (connection refused: nothing listens there)"
            ) from None
        except ConnectionResetError:  # closed with the request unread: a reset, not a FIN
            raise RealtimeConnectionError(
                f"{host}: cannot connect ({_CLOSED_UNANSWERED})"
            ) from None
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise RealtimeConnectionError(
                f"{host}: cannot connect ({type(exc).__name__}: {_scrub(str(exc), endpoint)})"
            ) from None
        log.debug("realtime.connect.complete", host=host)
        return cls(ws, endpoint, options, clock)

    @property
    def closed(self) -> ConnectionClosed | None:
        """How the socket closed, once it has."""
        return self._closed

    def send(self, frame: OutboundFrame) -> None:
        """Queue a frame; the writer sends it (audio may be dropped by policy, never control)."""
        self.queue.put(frame)

    def send_all(self, frames: list[OutboundFrame]) -> None:
        for frame in frames:
            self.queue.put(frame)

    async def recv(self) -> str | bytes:
        """The next frame from the server (``str`` for text, ``bytes`` for binary)."""
        try:
            return await self._ws.recv()
        except websockets.ConnectionClosed as exc:
            raise self._closed_from(exc) from None

    async def _write(self) -> None:
        ws = self._ws
        queue = self.queue
        try:
            while True:
                frame = await queue.get()
                await ws.send(frame.data, text=True)
                self.frames_sent += 1
                if frame.samples:
                    self.samples_sent += frame.samples
                    self.last_sent_at = self._clock()
                if self.on_sent is not None:
                    self.on_sent(frame)
        except websockets.ConnectionClosed as exc:
            self._closed_from(exc)

    async def ping(self) -> float:
        """Send a ping and wait for its pong; returns the round trip in seconds.

        For a keepalive driven from outside (``ping_interval=None``): the caller decides when
        to ping and how long a pong may take. Raises :class:`ConnectionClosed` if the socket
        closes first.
        """
        try:
            pong = await self._ws.ping()
            return await pong
        except websockets.ConnectionClosed as exc:
            raise self._closed_from(exc) from None

    def _closed_from(self, exc: websockets.ConnectionClosed) -> ConnectionClosed:
        if self._closed is None:
            close = exc.rcvd or exc.sent
            code = close.code if close is not None else 1006
            reason = close.reason if close is not None else ""
            cls = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
            self._closed = cls(code, reason)
        return self._closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent) and stop the writer. Unsent frames stay queued."""
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        with contextlib.suppress(Exception):
            await self._ws.close(code, reason)
        if self._closed is None:
            self._closed = ConnectionClosedOK(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection at once (no close handshake)."""
        self._writer.cancel()
        transport = self._ws.transport
        if transport is not None:
            transport.abort()


_CLOSED_UNANSWERED = "the server closed the connection without answering the WebSocket upgrade"


def _plain_http_status(exc: websockets.InvalidMessage) -> int | None:
    """The status of an HTTP/1.0 answer (``websockets`` insists on HTTP/1.1 and reports any
    other answer as "did not receive a valid HTTP response"), or None."""
    match = re.search(r"HTTP/1\.0 (\d{3})\b", str(exc.__cause__ or ""))
    return int(match.group(1)) if match else None


def _invalid_message(exc: websockets.InvalidMessage) -> str:
    """What was wrong with the server's answer: ``websockets`` keeps the reason in the cause."""
    cause = exc.__cause__
    if isinstance(cause, EOFError):
        return _CLOSED_UNANSWERED
    return f"not a WebSocket answer: {cause or exc}"


def _scrub(text: str, endpoint: Endpoint) -> str:
    return redact(text, (value.removeprefix("Bearer ") for _name, value in endpoint.headers))


def _error_detail(body: bytes | None, endpoint: Endpoint) -> str:
    """The server's own error message from a refused upgrade, without anything key-like."""
    if not body:
        return ""
    text = body[:2000].decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        message = text.strip().splitlines()[0] if text.strip() else ""
    else:
        error = parsed.get("error") if isinstance(parsed, dict) else None
        message = error.get("message", "") if isinstance(error, dict) else ""
        message = message if isinstance(message, str) else ""
    return _scrub(message[:200], endpoint)
