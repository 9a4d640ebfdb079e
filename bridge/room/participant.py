"""The seam between the bridge and "a room".

The bridge publishes through a small part of ``rtc.LocalParticipant``'s interface
(:class:`AgentParticipant`): publish a track, set attributes, open a text stream, publish a
legacy transcription. In production that is ``JobContext.room.local_participant`` itself, with
no adapter; on the loopback (``bridge try``, tests, bench) it is
``bridge.room.loopback.LoopbackParticipant``, which records what was published and hands the
agent's track to a listener.

What the room tells the bridge (participants, tracks, mutes, chat) arrives as plain calls on
``bridge.call.room_input.RoomInput`` and ``bridge.call.call.Call``;
``bridge.pod.agent.attach_room`` forwards a real ``rtc.Room``'s events to them, the loopback
calls them directly.

:class:`PublishQueue` runs the room's async publishing calls one after another, in order, off
the audio path: the event handlers that decide what to publish never wait for the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from livekit import rtc

log = structlog.get_logger("bridge.room.participant")

AGENT_STATE = "lk.agent.state"
TOPIC_TRANSCRIPTION = "lk.transcription"
TOPIC_CHAT = "lk.chat"
ATTR_SEGMENT_ID = "lk.segment_id"
ATTR_TRACK_ID = "lk.transcribed_track_id"
ATTR_FINAL = "lk.transcription_final"

HUMAN_KINDS = frozenset(
    {rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, rtc.ParticipantKind.PARTICIPANT_KIND_SIP}
)


class TextWriter(Protocol):
    async def write(self, text: str) -> None: ...

    async def aclose(
        self, *, reason: str = "", attributes: dict[str, str] | None = None
    ) -> None: ...


class Publication(Protocol):
    @property
    def sid(self) -> str: ...


class AgentParticipant(Protocol):
    """What the bridge needs of its own participant (a subset of ``rtc.LocalParticipant``)."""

    @property
    def identity(self) -> str: ...

    async def publish_track(
        self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions = ...
    ) -> Publication: ...

    async def set_attributes(self, attributes: dict[str, str]) -> None: ...

    async def stream_text(
        self,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
        sender_identity: str | None = None,
    ) -> TextWriter: ...

    async def publish_transcription(self, transcription: rtc.Transcription) -> None: ...


@dataclass(frozen=True, slots=True)
class Human:
    """A participant who may be heard."""

    identity: str
    kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD


class PublishQueue:
    """Runs publishing coroutines in order on one task; failures are logged and counted."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="room-publish")

    def put(self, call: Callable[[], Awaitable[object]]) -> None:
        self._queue.put_nowait(call)

    async def _run(self) -> None:
        while True:
            call = await self._queue.get()
            if call is None:
                return
            try:
                await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the room refused one publication; the call goes on
                self.failures += 1
                log.warning("room.publish.failed", error=f"{type(exc).__name__}: {exc}")

    async def drain(self, timeout: float = 5.0) -> None:
        """Run what is queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
