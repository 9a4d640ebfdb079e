"""The engines under test, and the loopback-only floors their CPU is measured against.

- ``bridge``: our :class:`~bridge.call.call.Call`, exactly as ``bridge.pod.agent`` runs it: on the
  process's media loop, publishing through a loop-bound participant to the room's loop, with
  the default profile, reading the caller at 48 kHz in 10 ms frames.
- ``livekit-plugin``: LiveKit Agents' ``AgentSession`` with ``livekit.plugins.openai``'s
  ``RealtimeModel`` and LiveKit's own ``RoomIO`` on a stand-in room
  (:mod:`bridge.bench.plugin_room`), all at their defaults except what makes the two
  sessions the same: the same instructions, voice, turn detection (server VAD 0.5 / 300 /
  500 ms), noise reduction and no input transcription, audio output only, and the AEC
  warm-up off (it mutes the caller for the first 3 s of every reply; with it, most of the
  pattern's barge-ins would never reach the model).
- ``floor:<engine>``: the same loopbacks with no engine: the caller's track read the way that
  engine reads it (48 kHz / 10 ms, or 24 kHz / 50 ms), on the loop it reads it on, and
  discarded, and an idle agent source of the same kind and queue size published to the
  listener.

The room's side (caller, listener, the agent's participant) lives on the bench's room loop
(:mod:`bridge.bench.job`); ``Engine.loop`` is the loop the engine itself runs on, where its
stalls are measured.

Probes are fed through small hooks: our call's own callbacks, and for the plugin a few
wrappers installed once per process that find the call they belong to through a context
variable (each job's tasks inherit it). Wrapping adds a few microseconds per event to both.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit import rtc

from bridge.bench.meter import (
    AgentAudioMeter,
    BargeInProbe,
    InLatencyProbe,
    OutLatencyProbe,
    Truncation,
)
from bridge.bench.plugin_room import BenchCaller, BenchParticipant, BenchRoom
from bridge.call.profiles import Profile, ProfileSet
from bridge.room.loopback import LoopbackCaller
from bridge.room.media_loop import LoopBoundParticipant, MediaLoop
from bridge.room.routed_audio import RoutedAudioSource, RoutedAudioStream

# bridge-sdk-audio: ours with the SDK's own rtc.AudioStream/AudioSource instead of routed
# audio (CallOptions.routed_audio), to measure what routing saves.
ENGINES = ("bridge", "livekit-plugin", "bridge-sdk-audio")
AGENT_RATE = 24_000


@dataclass(slots=True)
class Probes:
    """Everything measured about one call; our call reports to it as its
    :class:`~bridge.call.probe.CallProbe`, the plugin through the hooks below."""

    inp: InLatencyProbe = field(default_factory=InLatencyProbe)
    out: OutLatencyProbe = field(default_factory=OutLatencyProbe)
    barge: BargeInProbe = field(default_factory=BargeInProbe)
    meter: AgentAudioMeter = field(default_factory=AgentAudioMeter)
    starts: list[float] = field(default_factory=list)  # speech_started read off the socket
    stops: list[float] = field(default_factory=list)  # speech_stopped read off the socket
    truncations: list[Truncation] = field(default_factory=list)
    source: rtc.AudioSource | None = None  # the plugin's agent source (instrumented)
    sent_total: int = 0  # caller samples written to the socket
    responses: int = 0  # response.done read off the socket

    # ------------------------------------------------------------------ CallProbe

    def frame_received(self, position: float, at: float, frame_ms: int) -> None:
        self.inp.received(position, at, frame_ms)

    def audio_sent(self, samples: int, at: float) -> None:
        self.sent_total += samples
        self.inp.sent(self.sent_total, at)

    def delta_received(self, item_id: str, samples: int, at: float) -> None:
        self.out.delta(item_id, samples, at)

    def speech_started(self, at: float, agent_audible: bool) -> None:
        self.starts.append(at)
        self.barge.speech_started(at, agent_audible or self.meter.speaking)

    def speech_stopped(self, at: float) -> None:
        self.stops.append(at)

    def response_done(self) -> None:
        self.responses += 1

    def item_started(self, item_id: str) -> None:
        self.out.playback_started(item_id or None)  # "": the item whose deltas came last

    def source_captured(self, samples: int, at: float, previous_return: float) -> None:
        self.out.captured(samples, at, previous_return)

    def queue_cleared(self, at: float) -> None:
        self.barge.cleared(at)

    def truncated(self, at: float, item_id: str, audio_end_ms: int) -> None:
        cause = self.starts[-1] if self.starts else at
        self.truncations.append(Truncation(at, cause, item_id, audio_end_ms))


def instrument_source(source: rtc.AudioSource, probes: Probes) -> None:
    """Time every capture into the plugin's agent source and every clearing of its queue."""
    capture, clear = source.capture_frame, source.clear_queue
    last_return = 0.0

    async def capture_frame(frame: rtc.AudioFrame) -> None:
        nonlocal last_return
        probes.source_captured(frame.samples_per_channel, time.monotonic(), last_return)
        await capture(frame)
        last_return = time.monotonic()

    def clear_queue() -> None:
        clear()
        probes.queue_cleared(time.monotonic())

    source.capture_frame = capture_frame  # type: ignore[method-assign]
    source.clear_queue = clear_queue  # type: ignore[method-assign]
    probes.source = source


class Engine(Protocol):
    name: str
    chunk_samples: int  # caller audio per append (for counting dropped frames)
    loop: asyncio.AbstractEventLoop | None  # where it runs (set by start)

    async def start(
        self, caller: LoopbackCaller, participant: BenchParticipant, probes: Probes
    ) -> None: ...

    async def aclose(self) -> None: ...

    def figures(self) -> dict[str, Any]: ...


# ---------------------------------------------------------------------- ours


class BridgeEngine:
    name = "bridge"

    def __init__(self, sim_url: str, *, routed: bool = True) -> None:
        self.sim_url = sim_url
        self.routed = routed
        self.name = "bridge" if routed else "bridge-sdk-audio"
        self.profile = ProfileSet.builtin().default
        self.chunk_samples = AGENT_RATE * self.profile.chunk_ms // 1000
        self.call: Any = None
        self.media = MediaLoop.shared()
        self.loop: asyncio.AbstractEventLoop | None = self.media.loop

    async def start(
        self, caller: LoopbackCaller, participant: BenchParticipant, probes: Probes
    ) -> None:
        await self.media.run(self._start(caller, participant, probes))

    async def _start(
        self, caller: LoopbackCaller, participant: BenchParticipant, probes: Probes
    ) -> None:
        from bridge.call.call import Call, CallOptions
        from bridge.room.participant import Human
        from sessions.endpoint import Endpoint

        options = CallOptions(
            stream_rate=caller.sample_rate,
            stream_channels=caller.channels,
            routed_audio=self.routed,
        )
        endpoint = Endpoint.compatible(self.sim_url, api_key="bench")
        room_side = LoopBoundParticipant(participant, participant.loop)
        call = self.call = Call(room_side, self.profile, endpoint, options=options, probe=probes)
        await call.start()
        call.input.participant_joined(Human(caller.identity))
        call.input.track_subscribed(caller.identity, caller.track)

    async def aclose(self) -> None:
        if self.call is not None:
            await self.media.run(self.call.aclose())

    def figures(self) -> dict[str, Any]:
        if self.call is None:
            return {}
        record = self.call.record
        return {
            "interruptions": record.interruptions,
            "errors": list(record.errors),
            "policy_dropped_frames": record.dropped_frames,
            "reported_underruns": record.underruns,
        }


# ---------------------------------------------------------------------- LiveKit's plugin

_CURRENT: contextvars.ContextVar[Probes | None] = contextvars.ContextVar(
    "bench_probes", default=None
)
_hooks_lock = threading.Lock()
_hooks_installed = False
_APPEND_TYPE = '"type": "input_audio_buffer.append"'
_AUDIO_KEY = '"audio": "'


def _b64_samples(text: str) -> int:
    """PCM16 samples in a base64 string, without decoding it."""
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return (len(text) * 3 // 4 - padding) // 2


def _appended_samples(data: str) -> int:
    """Samples in an ``input_audio_buffer.append`` as the plugin serialises it (0 if not)."""
    if _APPEND_TYPE not in data[:64] and _APPEND_TYPE not in data[-80:]:
        return 0
    start = data.find(_AUDIO_KEY)
    if start < 0:
        return 0
    start += len(_AUDIO_KEY)
    return _b64_samples(data[start : data.index('"', start)])


def install_plugin_hooks() -> None:
    """Wrap the plugin's input frames, socket writes, server events and truncations (once)."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    import aiohttp
    from livekit.agents.llm._realtime.openai import RealtimeSession
    from livekit.agents.voice.room_io._input import _ParticipantAudioInputStream

    process_frame = _ParticipantAudioInputStream._process_frame

    def _process_frame(self: Any, frame: rtc.AudioFrame) -> None:
        probes = _CURRENT.get()
        if probes is not None:
            end = probes.inp.received_total + frame.samples_per_channel
            probes.frame_received(end, time.monotonic(), round(frame.duration * 1000))
        process_frame(self, frame)

    _ParticipantAudioInputStream._process_frame = _process_frame  # type: ignore[method-assign]

    send_str = aiohttp.ClientWebSocketResponse.send_str

    async def _send_str(self: Any, data: str, compress: int | None = None) -> None:
        await send_str(self, data, compress)
        probes = _CURRENT.get()
        if probes is not None:
            samples = _appended_samples(data)
            if samples:
                probes.audio_sent(samples, time.monotonic())

    aiohttp.ClientWebSocketResponse.send_str = _send_str  # type: ignore[method-assign]

    def wrap(name: str, before: Callable[[Probes, Any], None]) -> None:
        original = getattr(RealtimeSession, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            probes = _CURRENT.get()
            if probes is not None:
                before(probes, (args, kwargs))
            return original(self, *args, **kwargs)

        setattr(RealtimeSession, name, wrapper)

    def delta(probes: Probes, call: Any) -> None:
        event = call[0][0]
        probes.delta_received(event.item_id, _b64_samples(event.delta), time.monotonic())

    def truncate(probes: Probes, call: Any) -> None:
        kwargs = call[1]
        if "audio" in kwargs.get("modalities", ()):
            probes.truncated(time.monotonic(), kwargs["message_id"], kwargs["audio_end_ms"])

    def started(probes: Probes, _call: Any) -> None:
        source = probes.source
        probes.speech_started(time.monotonic(), source is not None and source.queued_duration > 0)

    def stopped(probes: Probes, _call: Any) -> None:
        probes.speech_stopped(time.monotonic())

    wrap("_handle_response_audio_delta", delta)
    wrap("_handle_input_audio_buffer_speech_started", started)
    wrap("_handle_input_audio_buffer_speech_stopped", stopped)
    wrap("truncate", truncate)
    wrap("_handle_response_done", lambda p, _c: p.response_done())


def instrument_plugin_output(session: Any, probes: Probes) -> None:
    """Probe an ``AgentSession``'s audio output: its source, and each playback's start."""
    output = session._room_io._audio_output
    instrument_source(output._audio_source, probes)
    playback_started = output.on_playback_started

    def started(**kwargs: Any) -> None:
        probes.item_started("")  # the plugin does not say which item
        playback_started(**kwargs)

    output.on_playback_started = started


def plugin_settings(sim_url: str, profile: Profile) -> dict[str, Any]:
    """``RealtimeModel`` keywords that make the plugin's session the same as ours: the same
    model, voice, server VAD, noise reduction, no input transcription, audio out only."""
    from openai.types.realtime.realtime_audio_input_turn_detection import ServerVad

    turn: Any = profile.session.turn_detection
    return {
        "base_url": sim_url,
        "api_key": "bench",
        "model": profile.session.model,
        "voice": profile.session.voice,
        "modalities": ["audio"],
        "input_audio_transcription": None,
        "input_audio_noise_reduction": "near_field",
        "turn_detection": ServerVad(
            type="server_vad",
            threshold=turn.threshold,
            prefix_padding_ms=turn.prefix_padding_ms,
            silence_duration_ms=turn.silence_duration_ms,
            create_response=True,
            interrupt_response=True,
        ),
    }


class PluginEngine:
    name = "livekit-plugin"
    chunk_samples = AGENT_RATE // 10  # the plugin's hard-coded 100 ms appends

    def __init__(self, sim_url: str) -> None:
        self.sim_url = sim_url
        self.profile = ProfileSet.builtin().default
        self.session: Any = None
        self.model: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._errors: list[dict[str, str]] = []

    async def start(
        self, caller: LoopbackCaller, participant: BenchParticipant, probes: Probes
    ) -> None:
        from livekit.agents import Agent, AgentSession
        from livekit.plugins.openai import realtime

        install_plugin_hooks()
        self.loop = asyncio.get_running_loop()  # the job's own loop, as livekit-agents runs it
        _CURRENT.set(probes)  # the session's tasks, created from here on, inherit it
        self.model = realtime.RealtimeModel(**plugin_settings(self.sim_url, self.profile))
        session = self.session = AgentSession(llm=self.model, aec_warmup_duration=None)
        session.on("error", self._on_error)
        room: Any = BenchRoom(participant, BenchCaller(caller.identity, caller.track))
        await session.start(Agent(instructions=self.profile.session.instructions), room=room)
        instrument_plugin_output(session, probes)

    def _on_error(self, event: Any) -> None:
        self._errors.append({"code": type(event.error).__name__, "message": str(event.error)})

    async def aclose(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.aclose()
        if self.model is not None:
            with contextlib.suppress(Exception):
                await self.model.aclose()

    def figures(self) -> dict[str, Any]:
        return {"errors": list(self._errors)}


# ---------------------------------------------------------------------- floors


class FloorEngine:
    """The loopbacks of ``engine`` with nothing between them: its own kind of input stream
    and agent source (ours route their FFI events, the plugin's are the SDK's)."""

    def __init__(self, engine: str) -> None:
        self.name = f"floor:{engine}"
        self.routed = engine == "bridge"
        self.rate, self.frame_ms, self.queue_ms = (
            (48_000, 10, 100) if self.routed else (24_000, 50, 200)
        )
        self.chunk_samples = 0
        self._stream: Any = None
        self._task: asyncio.Task[None] | None = None
        self._source: rtc.AudioSource | None = None
        self._media = MediaLoop.shared() if self.routed else None
        self.loop: asyncio.AbstractEventLoop | None = self._media.loop if self._media else None

    async def start(
        self, caller: LoopbackCaller, participant: BenchParticipant, probes: Probes
    ) -> None:
        if self._media is not None:
            await self._media.run(self._start(caller, participant))
        else:
            self.loop = asyncio.get_running_loop()
            await self._start(caller, participant)

    async def _start(self, caller: LoopbackCaller, participant: BenchParticipant) -> None:
        stream: Any
        if self.routed:
            stream = RoutedAudioStream(
                caller.track, sample_rate=self.rate, num_channels=1, frame_size_ms=self.frame_ms
            )
        else:
            stream = rtc.AudioStream.from_track(
                track=caller.track,
                sample_rate=self.rate,
                num_channels=1,
                frame_size_ms=self.frame_ms,
            )
        self._stream = stream

        async def discard() -> None:
            async for _event in stream:
                pass

        self._task = asyncio.get_running_loop().create_task(discard(), name="floor-input")
        source_class = RoutedAudioSource if self.routed else rtc.AudioSource
        source = self._source = source_class(AGENT_RATE, 1, queue_size_ms=self.queue_ms)
        track = rtc.LocalAudioTrack.create_audio_track("agent_audio", source)
        await participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )

    async def aclose(self) -> None:
        if self._media is not None:
            await self._media.run(self._aclose())
        else:
            await self._aclose()

    async def _aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            if self._stream is not None:
                await self._stream.aclose()
            if self._source is not None:
                await self._source.aclose()

    def figures(self) -> dict[str, Any]:
        return {}


def make_engine(name: str, sim_url: str) -> Engine:
    if name == "bridge":
        return BridgeEngine(sim_url)
    if name == "bridge-sdk-audio":
        return BridgeEngine(sim_url, routed=False)
    if name == "livekit-plugin":
        return PluginEngine(sim_url)
    if name.startswith("floor:") and name[6:] in ENGINES:
        return FloorEngine(name[6:])
    raise ValueError(f"unknown engine {name!r}: one of {', '.join(ENGINES)} (or floor:ENGINE)")
