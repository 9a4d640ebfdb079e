"""A loopback stand-in for ``rtc.Room``: enough of one for both engines to run on unchanged.

Our bridge publishes through :class:`BenchParticipant` (it implements
``bridge.room.participant.AgentParticipant``). LiveKit's ``RoomIO`` — the plugin's own room
input and output, used as they are: 50 ms input frames with AGC, the 200 ms output queue, transcript
synchronisation, agent state, the session host's events — runs on :class:`BenchRoom`, which
offers one caller (a loopback track) and the same participant.

Publications go nowhere but are counted, so both engines pay for what they publish and
neither keeps it; the agent's audio track is handed to the benchmark's listener.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc

_sids = itertools.count(1)
CLIENT_PROTOCOL = 1  # a current client: reads captions from text streams


@dataclass(slots=True)
class Published:
    """What an agent published, counted."""

    attributes: int = 0
    text_streams: int = 0
    text_bytes: int = 0
    transcriptions: int = 0
    data_bytes: int = 0
    states: list[str] = field(default_factory=list)


class _Writer:
    def __init__(self, published: Published) -> None:
        self._published = published

    async def write(self, text: str) -> None:
        self._published.text_bytes += len(text)

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        return None


class _Publication:
    def __init__(
        self, sid: str, track: rtc.Track, source: rtc.TrackSource.ValueType, name: str
    ) -> None:
        self.sid = sid
        self.track = track
        self.source = source
        self.name = name
        self.kind = rtc.TrackKind.KIND_AUDIO
        self.mime_type = "audio/opus"
        self.audio_features: list[int] = []
        self.subscribed = True
        self.muted = False

    async def wait_for_subscription(self) -> None:
        return None


class BenchParticipant:
    """The agent's own participant: publishes into counters, hands its track to a listener."""

    kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

    def __init__(
        self,
        on_track: Callable[[rtc.LocalTrack], None],
        loop: asyncio.AbstractEventLoop,
        identity: str = "agent",
    ) -> None:
        self.loop = loop  # the room's loop
        self.identity = identity
        self.sid = f"PA_{identity}"
        self.name = identity
        self.metadata = ""
        self.attributes: dict[str, str] = {}
        self.track_publications: dict[str, _Publication] = {}
        self.published = Published()
        self._on_track = on_track

    async def publish_track(
        self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions | None = None
    ) -> _Publication:
        source = options.source if options is not None else rtc.TrackSource.SOURCE_UNKNOWN
        publication = _Publication(f"TR_bench{next(_sids)}", track, source, track.name)
        self.track_publications[publication.sid] = publication
        self._on_track(track)
        return publication

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)
        self.published.attributes += 1
        state = attributes.get("lk.agent.state")
        if state is not None:
            self.published.states.append(state)

    async def stream_text(self, **_kwargs: Any) -> _Writer:
        self.published.text_streams += 1
        return _Writer(self.published)

    async def publish_transcription(self, _transcription: rtc.Transcription) -> None:
        self.published.transcriptions += 1

    async def send_bytes(self, data: bytes, **_kwargs: Any) -> None:
        self.published.data_bytes += len(data)

    async def send_text(self, text: str, **_kwargs: Any) -> None:
        self.published.text_bytes += len(text)

    def register_rpc_method(self, *_args: Any, **_kwargs: Any) -> Callable[[Any], Any]:
        return lambda handler: handler


class _Info:
    client_protocol = CLIENT_PROTOCOL


class BenchCaller:
    """The caller as a remote participant with one microphone track."""

    kind = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
    state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
    disconnect_reason = None

    def __init__(self, identity: str, track: rtc.Track) -> None:
        self.identity = identity
        self.sid = f"PA_{identity}"
        self.name = identity
        self.metadata = ""
        self.attributes: dict[str, str] = {}
        self._info = _Info()
        publication = _Publication("TR_caller", track, rtc.TrackSource.SOURCE_MICROPHONE, "mic")
        self.track_publications = {publication.sid: publication}


class BenchRoom(rtc.EventEmitter[str]):
    """One caller and the agent, connected, with nobody else and no server."""

    def __init__(self, local: BenchParticipant, caller: BenchCaller) -> None:
        super().__init__()
        self.local_participant = local
        self.remote_participants = {caller.identity: caller}
        self.name = "bench"
        self.metadata = ""
        self.connection_state = rtc.ConnectionState.CONN_CONNECTED
        self._text_handlers: dict[str, object] = {}

    def isconnected(self) -> bool:
        return True

    def register_text_stream_handler(self, topic: str, handler: object) -> None:
        self._text_handlers[topic] = handler

    def unregister_text_stream_handler(self, topic: str) -> None:
        self._text_handlers.pop(topic, None)

    def register_byte_stream_handler(self, topic: str, handler: object) -> None:
        return None

    def unregister_byte_stream_handler(self, topic: str) -> None:
        return None
