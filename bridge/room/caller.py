"""A caller as a real participant of a LiveKit room.

:class:`RoomCaller` is what a person's browser or phone app does, with a recording for a mouth
and a recorder for an ear: it joins with a token, publishes a microphone track (Opus over
WebRTC, through the server) and plays samples into it in real time, and, as a subscriber,
records what the agent publishes: its audio track (a :class:`~bridge.room.listener.Listener`,
so the recording can be aligned with what was played), its ``lk.transcription`` text streams
(header and trailer attributes merged, as client SDKs do), the legacy transcription events and
its ``lk.agent.state`` attribute over time.

``bridge try --livekit-url``, the real-room tests and the benchmark's callers use it.
``Room.connect`` is never cancelled half-way (a known FFI panic then sends SIGTERM to the
whole process): a cancelled :meth:`connect` lets the connection finish in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from bridge.room.listener import Listener
from bridge.room.participant import AGENT_STATE, TOPIC_TRANSCRIPTION

AGENT_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


@dataclass(slots=True)
class ReceivedStream:
    """A text stream received: who sent it, its attributes (trailer merged), its text."""

    topic: str
    sender: str
    attributes: dict[str, str]  # the header's, as opened
    opened_at: float
    text: str = ""
    final_attributes: dict[str, str] = field(default_factory=dict)  # after the trailer
    closed_at: float | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    at: float  # time.monotonic()
    identity: str
    state: str


class RoomCaller:
    """One caller: joins, publishes a microphone, records the agent."""

    def __init__(
        self,
        identity: str,
        *,
        sample_rate: int = 48_000,
        channels: int = 1,
        hear_rate: int = 24_000,
        keep_audio: bool = True,
        queue_ms: int = 50,
        on_frame: Callable[[NDArray[np.int16], float], None] | None = None,
    ) -> None:
        self.identity = identity
        self.sample_rate = sample_rate
        self.channels = channels
        self.hear_rate = hear_rate
        self.keep_audio = keep_audio
        self.on_frame = on_frame  # each frame heard from the agent, with its arrival time
        self.room = rtc.Room()
        self.source = rtc.AudioSource(sample_rate, channels, queue_size_ms=queue_ms)
        self.track = rtc.LocalAudioTrack.create_audio_track(f"{identity}-mic", self.source)
        self.publication: rtc.LocalTrackPublication | None = None
        self.listener: Listener | None = None
        self.agent_identity: str | None = None
        self.agent_track_sid: str | None = None
        self.streams: list[ReceivedStream] = []
        self.transcriptions: list[tuple[float, str, rtc.TranscriptionSegment]] = []
        self.states: list[StateChange] = []
        self.started_at: float | None = None  # the first sample played
        self.played = 0  # frames (per channel) handed to the source
        self._frame_samples = 0
        self._enqueued: list[float] = []  # when each frame of play() went into the source
        self._in_flight: asyncio.Future[None] | None = None  # the capture under way
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.room.on("track_subscribed", self._subscribed)
        self.room.on("participant_attributes_changed", self._attributes)
        self.room.on("participant_connected", self._joined)
        self.room.on("transcription_received", self._transcription)
        self.room.register_text_stream_handler(TOPIC_TRANSCRIPTION, self._text_stream)

    # ------------------------------------------------------------------ joining

    async def connect(self, url: str, token: str, *, timeout: float = 20.0) -> None:
        """Join the room (never cancelled half-way: see the module docstring)."""
        connecting = asyncio.ensure_future(self.room.connect(url, token))
        async with asyncio.timeout(timeout):
            await asyncio.shield(connecting)
        for participant in self.room.remote_participants.values():
            self._joined(participant)

    async def publish(
        self, source: rtc.TrackSource.ValueType = rtc.TrackSource.SOURCE_MICROPHONE
    ) -> None:
        """Publish the microphone track (source MICROPHONE, as browsers do; LiveKit's SIP
        service publishes its callers' audio with no source: ``SOURCE_UNKNOWN``)."""
        options = rtc.TrackPublishOptions(source=source)
        self.publication = await self.room.local_participant.publish_track(self.track, options)

    async def play(self, samples: NDArray[np.int16], *, frame_ms: int = 10) -> None:
        """Play interleaved ``samples`` in real time (the source's queue paces the loop).

        :attr:`started_at` is when the first sample went in: sample ``i`` leaves the source
        at ``started_at + i / sample_rate``, which is what :meth:`heard` aligns with.
        """
        per_frame = self.sample_rate * frame_ms // 1000
        step = per_frame * self.channels
        self._frame_samples = per_frame
        for start in range(0, samples.size - step + 1, step):
            chunk = samples[start : start + step]
            frame = rtc.AudioFrame(chunk.tobytes(), self.sample_rate, self.channels, per_frame)
            if self._in_flight is not None and not self._in_flight.done():
                await asyncio.wait({self._in_flight})  # a capture a cancelled play() left
            handed = time.monotonic()  # the source takes it now, or plays it after the queue
            if self.started_at is None:
                self.started_at = handed
            self._enqueued.append(handed)
            # The SDK refuses a capture while another is in flight, and cancelling the task
            # that awaits one does not stop it: shielded, so the next play() waits for it.
            self._in_flight = asyncio.ensure_future(self.source.capture_frame(frame))
            await asyncio.shield(self._in_flight)
            self.played += per_frame

    def as_played(self, mono: NDArray[np.int16]) -> NDArray[np.int16]:
        """``mono`` (what :meth:`play` played, one channel) on the wall clock's time line.

        The source plays its queue at real time: a frame starts when it was handed over or
        when the one before it ends, whichever is later (handed over: when ``capture_frame``
        was called; with room in the queue it is taken at once). A caller starved of CPU (a busy
        machine) hands frames late and the source runs dry between them; here those gaps are
        silence, as the room heard them, so positions in the result and in :meth:`heard`
        (both from :attr:`started_at`) are the same instants.
        """
        n, rate = self._frame_samples, self.sample_rate
        if not self._enqueued or not n:
            return mono
        origin = self._enqueued[0]
        starts: list[int] = []
        start = 0.0
        for k, handed in enumerate(self._enqueued):
            start = max(handed - origin, start + n / rate if k else 0.0)
            starts.append(int(round(start * rate)))
        out = np.zeros(starts[-1] + n, dtype=np.int16)
        for k, position in enumerate(starts):
            piece = mono[k * n : (k + 1) * n]
            out[position : position + piece.size] = piece
        return out

    async def silence(self, seconds: float) -> None:
        """Keep the microphone open and quiet for ``seconds`` (a caller who waits)."""
        await self.play(np.zeros(int(seconds * self.sample_rate) * self.channels, np.int16))

    async def unpublish(self) -> None:
        if self.publication is not None:
            await self.room.local_participant.unpublish_track(self.publication.sid)
            self.publication = None

    # ------------------------------------------------------------------ what arrives

    def _joined(self, participant: rtc.RemoteParticipant) -> None:
        if participant.kind == AGENT_KIND and self.agent_identity is None:
            self.agent_identity = participant.identity
            state = participant.attributes.get(AGENT_STATE)
            if state:
                self.states.append(StateChange(time.monotonic(), participant.identity, state))
            self._changed.set()

    def _subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if participant.kind != AGENT_KIND or track.kind != rtc.TrackKind.KIND_AUDIO:
            return
        if self.listener is None:
            self._joined(participant)
            self.agent_track_sid = publication.sid
            self.listener = Listener(
                track, self.hear_rate, keep=self.keep_audio, on_frame=self.on_frame
            )
            self._changed.set()

    def _attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        state = changed.get(AGENT_STATE)
        if state is not None and participant.kind == AGENT_KIND:
            self.states.append(StateChange(time.monotonic(), participant.identity, state))
            self._changed.set()

    def _transcription(
        self,
        segments: list[rtc.TranscriptionSegment],
        participant: rtc.Participant | None,
        publication: rtc.TrackPublication | None,
    ) -> None:
        identity = participant.identity if participant is not None else ""
        now = time.monotonic()
        self.transcriptions.extend((now, identity, segment) for segment in segments)
        self._changed.set()

    def _text_stream(self, reader: rtc.TextStreamReader, sender: str) -> None:
        info = reader.info
        stream = ReceivedStream(
            info.topic, sender, dict(info.attributes or {}), opened_at=time.monotonic()
        )
        self.streams.append(stream)

        async def read() -> None:
            async for chunk in reader:
                stream.text += chunk
            stream.final_attributes = dict(reader.info.attributes or {})
            stream.closed_at = time.monotonic()
            self._changed.set()

        self._spawn(read())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ waiting and reading

    async def until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Until ``condition()`` holds, re-checked whenever something arrives (no polling)."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def state_values(self) -> list[str]:
        """The agent's ``lk.agent.state`` values in the order they arrived."""
        return [change.state for change in self.states]

    @property
    def agent_state(self) -> str | None:
        return self.states[-1].state if self.states else None

    def captions(self, *, agent: bool = True) -> list[ReceivedStream]:
        """``lk.transcription`` streams sent as the agent (or on behalf of someone else)."""
        return [
            s
            for s in self.streams
            if s.topic == TOPIC_TRANSCRIPTION and (s.sender == self.agent_identity) == agent
        ]

    def heard(self) -> NDArray[np.int16]:
        """What the caller received from the agent, aligned with what it played.

        Sample 0 is the moment the first sample played (:attr:`started_at`); mono at
        :attr:`hear_rate`.
        """
        if self.listener is None:
            return np.zeros(0, dtype=np.int16)
        audio = self.listener.audio()
        if self.started_at is None:
            return audio
        return audio[self.listener.position_at(self.started_at) :]

    async def aclose(self) -> None:
        """Stop recording and leave the room."""
        if self.listener is not None:
            await self.listener.aclose()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        with contextlib.suppress(Exception):
            await self.source.aclose()
