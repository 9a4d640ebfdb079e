"""A conversation that outlives its sockets.

:class:`SessionSupervisor` is what the bridge talks to. It owns the conversation mirror, the
caller-audio timeline and the current :class:`~sessions.session.RealtimeSession`, and offers
the same calls. Events of the current socket are handed to ``handler`` synchronously.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from sessions.config import SessionConfig
from sessions.connection import ConnectionOptions
from sessions.conversation import Conversation
from sessions.endpoint import Endpoint
from sessions.events import ServerEvent
from sessions.protocol import OutboundFrame, Truncation
from sessions.session import RealtimeSession
from sessions.usage import PriceTable, Usage

log = structlog.get_logger("sessions.supervisor")

EventHandler = Callable[[ServerEvent], None]


class SessionSupervisor:
    def __init__(
        self,
        endpoint: Endpoint,
        config: SessionConfig,
        *,
        handler: EventHandler,
        chunk_ms: int = 20,
        options: ConnectionOptions | None = None,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.handler = handler
        self.chunk_ms = chunk_ms
        self.options = options or ConnectionOptions()
        self.prices = prices or PriceTable()
        self.clock = clock
        self.conversation = Conversation()
        self.samples_appended = 0
        self.audio_origin = 0  # global sample index of the current socket's first sample
        self.on_audio_sent: Callable[[OutboundFrame], None] | None = None
        self._session = self._new_session()

    def _new_session(self) -> RealtimeSession:
        return RealtimeSession(
            self.endpoint,
            self.config,
            handler=self.handler,
            chunk_ms=self.chunk_ms,
            options=self.options,
            prices=self.prices,
            conversation=self.conversation,
            clock=self.clock,
        )

    @property
    def session(self) -> RealtimeSession:
        return self._session

    async def start(self) -> None:
        await self._session.start()
        if self._session.connection is not None:
            self._session.connection.on_sent = self._sent

    def _sent(self, frame: OutboundFrame) -> None:
        if self.on_audio_sent is not None and frame.samples:
            self.on_audio_sent(frame)

    async def run(self) -> None:
        await self._session.run()

    async def close(self, reason: str = "") -> None:
        await self._session.close(1000, reason)

    # ------------------------------------------------------------------ figures

    @property
    def usage(self) -> Usage:
        return self._session.usage

    @property
    def cost_usd(self) -> float:
        return self._session.cost_usd

    @property
    def dropped_frames(self) -> int:
        """Caller audio appends dropped because the socket could not keep up."""
        connection = self._session.connection
        return connection.queue.dropped_frames if connection is not None else 0

    @property
    def response_active(self) -> bool:
        return self._session.protocol.response_active

    @property
    def active_response_id(self) -> str | None:
        return self._session.protocol.active_response_id

    def sample_at_ms(self, audio_ms: int) -> int:
        """The global caller-audio sample of ``audio_ms`` on the current socket's timeline."""
        return self.audio_origin + audio_ms * 24

    # ------------------------------------------------------------------ calls

    def append_audio(self, samples: NDArray[np.int16]) -> None:
        self.samples_appended += samples.size
        self._session.append_audio(samples)

    def flush_audio(self) -> None:
        self._session.flush_audio()

    def commit(self) -> None:
        self._session.commit()

    def create_response(self, response: Mapping[str, Any] | None = None) -> None:
        self._session.create_response(response)

    def cancel_response(self) -> None:
        self._session.cancel_response()

    def discard_response(self, response_id: str) -> None:
        self._session.discard_response(response_id)

    def truncate(self, item_id: str, played_ms: int, heard_text: str | None = None) -> Truncation:
        record = self.conversation.get(item_id)
        if record is not None and heard_text is not None:
            record.heard_text = heard_text
        return self._session.truncate(item_id, played_ms)

    def send_user_text(self, text: str) -> None:
        self._session.send_user_text(text)

    def send_function_output(self, call_id: str, output: str) -> None:
        self._session.send_function_output(call_id, output)
