"""Driving our own ``sessions`` client against the in-process simulator, event by event.

Audio is pushed faster than real time (the simulator's VAD works in audio time); waits are on
events, with a timeout only as a safety net.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sessions.connection import ConnectionOptions
from sessions.endpoint import Endpoint
from sessions.events import ServerEvent
from sessions.session_config import ServerVad, SessionConfig
from sessions.supervisor import ContinuityOptions, SessionSupervisor
from sessions.turns import TurnAction

E = TypeVar("E")

#: Short silences so turns end quickly in audio time.
CONFIG = SessionConfig(
    instructions="Test instructions.", turn_detection=ServerVad(silence_duration_ms=300)
)


class EventLog:
    """Every event handed to the handler (and every turn action), with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.turn_actions: list[TurnAction] = []
        self._changed = asyncio.Event()

    def __call__(self, event: ServerEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def turn(self, actions: tuple[TurnAction, ...]) -> None:
        """``on_turn``: what a bridge would be asked to do."""
        self.turn_actions += actions

    def poke(self) -> None:
        """Something other than an event changed (a reconnect): re-check what we wait for."""
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def next(self, kind: type[E], after: int = 0, timeout: float = 15.0) -> E:
        """The first event of ``kind`` beyond the first ``after`` of them."""
        await self.until(lambda: len(self.of(kind)) > after, timeout)
        return self.of(kind)[after]


def supervisor(
    url: str, log: EventLog, *, options: ConnectionOptions | None = None, **continuity: Any
) -> SessionSupervisor:
    client = SessionSupervisor(
        Endpoint.compatible(url, api_key="test-key"),
        CONFIG,
        handler=log,
        on_turn=log.turn,
        options=options,
        continuity=ContinuityOptions(**continuity),
    )
    client.on_reconnect = lambda _reason: log.poke()
    return client
