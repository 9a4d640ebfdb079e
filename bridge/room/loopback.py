"""A room without a server: the ``livekit`` rtc loopback.

``rtc.AudioSource`` → ``rtc.LocalAudioTrack`` → ``rtc.AudioStream`` delivers real frames in
real time with no LiveKit server. Two of them make a room for ``bridge try``, the tests and
the benchmark:

- :class:`LoopbackCaller` plays a recording into a track the bridge hears, as a remote
  caller's microphone would arrive;
- :class:`LoopbackParticipant` stands in for the agent's ``rtc.LocalParticipant``: it records
  every attribute, text stream and transcription the bridge publishes, and hands the agent's
  audio track to a :class:`~bridge.room.listener.Listener`, which records it exactly as
  another participant would receive it (before the network).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from bridge.room.routed_audio import RoutedAudioSource

_sids = itertools.count(1)


@dataclass(slots=True)
class RecordedStream:
    """A text stream the bridge opened: header, chunks written, trailer on close."""

    topic: str
    attributes: dict[str, str]
    sender_identity: str | None
    chunks: list[str] = field(default_factory=list)
    trailer: dict[str, str] | None = None
    opened_at: float = 0.0
    closed_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def closed(self) -> bool:
        return self.trailer is not None

    @property
    def final_attributes(self) -> dict[str, str]:
        """Header attributes with the trailer's merged over them (as client SDKs do)."""
        return {**self.attributes, **(self.trailer or {})}


class _RecordingWriter:
    def __init__(self, stream: RecordedStream, clock: Callable[[], float]) -> None:
        self._stream = stream
        self._clock = clock

    async def write(self, text: str) -> None:
        if self._stream.closed:
            raise RuntimeError("write after close")
        self._stream.chunks.append(text)

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        if self._stream.closed:
            raise RuntimeError("Stream already closed")
        self._stream.trailer = dict(attributes or {})
        self._stream.closed_at = self._clock()


@dataclass(frozen=True, slots=True)
class _Publication:
    sid: str
    name: str
    source: int


class LoopbackParticipant:
    """Records what the bridge publishes; an ``AgentParticipant`` (:mod:`.participant`)."""

    def __init__(
        self, identity: str = "agent-loopback", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._identity = identity
        self.clock = clock
        self.publications: list[_Publication] = []
        self.tracks: list[rtc.LocalTrack] = []
        self.attributes: dict[str, str] = {}
        self.attribute_history: list[tuple[float, dict[str, str]]] = []
        self.streams: list[RecordedStream] = []
        self.transcriptions: list[rtc.Transcription] = []
        self.on_track: Callable[[rtc.LocalTrack], None] = lambda _track: None

    @property
    def identity(self) -> str:
        return self._identity

    async def publish_track(
        self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions | None = None
    ) -> _Publication:
        options = options or rtc.TrackPublishOptions()
        publication = _Publication(f"TR_loop{next(_sids)}", track.name, options.source)
        self.publications.append(publication)
        self.tracks.append(track)
        self.on_track(track)
        return publication

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)
        self.attribute_history.append((self.clock(), dict(attributes)))

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
    ) -> _RecordingWriter:
        stream = RecordedStream(
            topic, dict(attributes or {}), sender_identity, opened_at=self.clock()
        )
        self.streams.append(stream)
        return _RecordingWriter(stream, self.clock)

    async def publish_transcription(self, transcription: rtc.Transcription) -> None:
        self.transcriptions.append(transcription)

    def states(self) -> list[str]:
        """Every ``lk.agent.state`` value published, in order."""
        return [a["lk.agent.state"] for _, a in self.attribute_history if "lk.agent.state" in a]


class LoopbackCaller:
    """A caller's microphone on the loopback: plays int16 audio into a track in real time."""

    def __init__(self, sample_rate: int, channels: int = 1, identity: str = "caller") -> None:
        self.identity = identity
        self.sample_rate = sample_rate
        self.channels = channels
        self.source = RoutedAudioSource(sample_rate, channels, queue_size_ms=50)
        self.track = rtc.LocalAudioTrack.create_audio_track(f"{identity}-mic", self.source)
        self.started_at: float | None = None
        self.played = 0  # frames (per channel) handed to the source

    async def play(self, samples: NDArray[np.int16], *, frame_ms: int = 10) -> None:
        """Play interleaved ``samples`` at real time (the source paces the loop)."""
        per_frame = self.sample_rate * frame_ms // 1000
        step = per_frame * self.channels
        for start in range(0, samples.size, step):
            chunk = samples[start : start + step]
            n = chunk.size // self.channels
            if not n:
                break
            frame = rtc.AudioFrame(chunk.tobytes(), self.sample_rate, self.channels, n)
            if self.started_at is None:
                self.started_at = time.monotonic()
            await self.source.capture_frame(frame)
            self.played += n

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.source.aclose()
