"""One configured Realtime conversation over one socket.

:class:`RealtimeSession` pumps the protocol core over a :class:`~sessions.connection.Connection`:

- ``start()`` connects, sends the ``session.update`` built from the frozen
  :class:`~sessions.session_config.SessionConfig` and waits for ``session.updated`` (a
  refusal raises :class:`~sessions.errors.SessionUpdateRejected` with the server's reason);
- ``run()`` is the single reader loop: each frame goes through the core and every event is
  handed to the ``handler`` *synchronously*, so a barge-in handler can clear playout within
  the same loop iteration that read ``speech_started``;
- the calls (``append_audio``, ``commit``, ``cancel_response``, ``truncate``...) are plain
  functions: they queue frames and return at once, so they can be called from the handler.

Audio is appended in fixed chunks (default 20 ms); the partial chunk is flushed before any
commit. Usage and cost accumulate from every ``response.done``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from resampling.framing import Framer
from sessions import events as ev
from sessions.connection import Connection, ConnectionOptions
from sessions.conversation import Conversation
from sessions.endpoint import Dialect, Endpoint
from sessions.errors import ConnectionClosed, InvalidState, SessionUpdateRejected
from sessions.events import ServerEvent
from sessions.protocol import RealtimeProtocol, Truncation
from sessions.session_config import SessionConfig
from sessions.usage import PriceTable, Usage

log = structlog.get_logger("sessions.session")

SAMPLE_RATE = 24_000
EventHandler = Callable[[ServerEvent], None]


def _ignore(_event: ServerEvent) -> None:
    return None


class RealtimeSession:
    """A Realtime conversation on one socket."""

    def __init__(
        self,
        endpoint: Endpoint,
        config: SessionConfig,
        *,
        handler: EventHandler = _ignore,
        chunk_ms: int = 20,
        options: ConnectionOptions | None = None,
        prices: PriceTable | None = None,
        conversation: Conversation | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if chunk_ms not in (10, 20, 40, 50, 100):
            raise InvalidState(f"chunk_ms must be 10, 20, 40, 50 or 100, not {chunk_ms}")
        self.endpoint = endpoint
        self.config = config
        self.handler = handler
        self.options = options or ConnectionOptions()
        self.prices = prices or PriceTable()
        self.clock = clock
        self.protocol = RealtimeProtocol(conversation)
        self.framer = Framer.for_duration(SAMPLE_RATE, chunk_ms)
        self.usage = Usage()
        self.cost_usd = 0.0
        self.responses = 0
        self.connection: Connection | None = None
        self.connected_at: float | None = None
        self.last_frame_at = clock()  # when the server last sent anything

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, timeout: float = 10.0) -> None:
        """Connect and configure; return once the server confirmed the configuration."""
        self.connection = await Connection.open(self.endpoint, self.options, clock=self.clock)
        self.connected_at = self.clock()
        self.configure(self.config)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for event in await self._read_events():
                        self._dispatch(event)
                        if isinstance(event, ev.SessionUpdated):
                            return
                        if isinstance(event, ev.ErrorReceived) and isinstance(
                            event.error, SessionUpdateRejected
                        ):
                            raise event.error
        except BaseException:
            await self.close()
            raise

    def configure(self, config: SessionConfig) -> None:
        """Send a ``session.update`` for ``config`` (GA shape, or beta for Azure preview)."""
        self.config = config
        session = (
            config.to_beta_session()
            if self.endpoint.dialect is Dialect.BETA
            else config.to_session_update()
        )
        self.protocol.update_session(session)
        self._flush()

    async def run(self) -> None:
        """Read until the socket closes; raises the :class:`ConnectionClosed` that ended it."""
        while True:
            for event in await self._read_events():
                self._dispatch(event)

    async def _read_events(self) -> list[ServerEvent]:
        connection = self._require_connection()
        frame = await connection.recv()
        self.last_frame_at = self.clock()
        if isinstance(frame, str):
            self.protocol.receive_text(frame)
        else:
            self.protocol.receive_bytes(frame)
        return self.protocol.events_received()

    def _dispatch(self, event: ServerEvent) -> None:
        if isinstance(event, ev.ResponseDone):
            self.responses += 1
            if event.usage is not None:
                self.usage = self.usage + event.usage
                self.cost_usd += self.prices.cost(self.config.model, event.usage)
        self.handler(event)
        self._flush()  # the handler may have queued frames; so may the core (a held create)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket. Idempotent."""
        self.protocol.close()
        if self.connection is not None:
            await self.connection.close(code, reason)

    @property
    def closed(self) -> ConnectionClosed | None:
        return self.connection.closed if self.connection is not None else None

    @property
    def expires_at(self) -> float | None:
        """Unix time the server will end this session, from ``session.created``."""
        return self.protocol.expires_at

    @property
    def conversation(self) -> Conversation:
        return self.protocol.conversation

    def _require_connection(self) -> Connection:
        if self.connection is None:
            raise InvalidState("the session is not started")
        return self.connection

    def _flush(self) -> None:
        frames = self.protocol.data_to_send()
        if frames and self.connection is not None:
            self.connection.send_all(frames)

    # ------------------------------------------------------------------ calls

    def append_audio(self, pcm: NDArray[np.int16] | bytes) -> None:
        """Queue caller audio (24 kHz mono PCM16); it leaves in whole chunks."""
        samples = pcm if isinstance(pcm, np.ndarray) else np.frombuffer(pcm, dtype=np.int16)
        for chunk in self.framer.push(samples):
            self.protocol.append_audio(chunk)
        self._flush()

    def flush_audio(self) -> None:
        """Send the partial chunk now (before a commit, or when the caller goes quiet)."""
        partial = self.framer.take_partial()
        if partial.size:
            self.protocol.append_audio(partial)
            self._flush()

    def commit(self) -> str:
        """Flush the partial chunk, then commit the input buffer (manual turn taking)."""
        self.flush_audio()
        event_id = self.protocol.commit_audio()
        self._flush()
        return event_id

    def create_response(self, response: Mapping[str, Any] | None = None) -> str | None:
        event_id = self.protocol.create_response(response)
        self._flush()
        return event_id

    def cancel_response(self) -> str | None:
        event_id = self.protocol.cancel_response()
        self._flush()
        return event_id

    def discard_response(self, response_id: str) -> None:
        self.protocol.discard_response(response_id)

    def truncate(self, item_id: str, played_ms: int) -> Truncation:
        result = self.protocol.truncate(item_id, played_ms)
        self._flush()
        return result

    def create_item(self, item: Mapping[str, Any], previous_item_id: str | None = None) -> str:
        event_id = self.protocol.create_item(item, previous_item_id)
        self._flush()
        return event_id

    def send_user_text(self, text: str) -> str:
        """Add a typed user message to the conversation (a response must be asked for)."""
        return self.create_item(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )

    def send_function_output(self, call_id: str, output: str) -> str:
        return self.create_item(
            {"type": "function_call_output", "call_id": call_id, "output": output}
        )
