"""Which participants are heard, and their audio into the session at 24 kHz mono.

Policies:

- ``linked`` (default): one caller. The identity named in dispatch metadata, or else the first
  human (standard or SIP participant) to join. When they leave, the bridge follows the next
  human present or the next to join (a metadata-named identity is waited for first).
- ``mix``: every human participant is heard, mixed into one stream (``bridge.call.mixer``).

Each heard microphone track is read (``bridge.room.routed_audio``: an ``rtc.AudioStream`` that
only wakes for its own frames) in ``frame_ms`` frames at ``stream_rate`` /
``stream_channels``, frames are converted with a per-track :class:`resampling.Resampler`
(a rate or channel change mid-stream is handed over without a click) and the result goes to
``sink(samples, received_at)``. Video tracks are never read.

When the heard audio stops in the middle of a turn (mute, unsubscribe, leave), a short
stretch of silence is appended so the server's VAD can close the turn instead of waiting for
audio that will never come. When no human is left, ``on_empty`` is called (the call ends
after a grace period unless someone comes back, ``on_return``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import structlog
from livekit import rtc
from numpy.typing import NDArray

from bridge.call.mixer import Mixer
from bridge.room.participant import Human
from bridge.room.routed_audio import RoutedAudioStream
from resampling.errors import ResamplingError
from resampling.resampler import Resampler

log = structlog.get_logger("bridge.call.room_input")

SAMPLE_RATE = 24_000
_KIND_NAMES: dict[int, str] = {int(value): name for name, value in rtc.ParticipantKind.items()}
Sink = Callable[[NDArray[np.int16], float], None]
StreamFactory = Callable[[rtc.Track], AsyncIterator[rtc.AudioFrameEvent]]


@dataclass(slots=True)
class _Reader:
    identity: str
    track: rtc.Track
    task: asyncio.Task[None] | None = None
    muted: bool = False
    resampler: Resampler | None = None
    frames: int = 0
    refused: int = 0  # frames the resampler could not take (dropped, counted)


@dataclass(slots=True)
class InputStats:
    frames: int = 0
    samples_out: int = 0
    refused_frames: int = 0
    handovers: int = 0
    closing_silences: int = 0
    heard: list[str] = field(default_factory=list)


class RoomInput:
    def __init__(
        self,
        *,
        sink: Sink,
        mode: str = "linked",
        linked_identity: str | None = None,
        stream_rate: int = 48_000,
        stream_channels: int = 1,
        frame_ms: int = 20,
        closing_silence_ms: int = 700,
        stream_factory: StreamFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        routed: bool = True,
    ) -> None:
        if mode not in ("linked", "mix"):
            raise ValueError(f"unknown input mode {mode!r}")
        self.mode = mode
        self.sink = sink
        self.requested_identity = linked_identity
        self.stream_rate = stream_rate
        self.stream_channels = stream_channels
        self.frame_ms = frame_ms
        self.closing_silence = np.zeros(SAMPLE_RATE * closing_silence_ms // 1000, dtype=np.int16)
        self.clock = clock
        self.routed = routed  # RoutedAudioStream, or the SDK's own rtc.AudioStream
        self._stream_factory = stream_factory or self._default_stream
        self._humans: dict[str, Human] = {}  # present, in join order
        self._tracks: dict[str, dict[str, rtc.Track]] = {}  # identity -> sid -> audio track
        self._readers: dict[tuple[str, str], _Reader] = {}
        self._mixer = Mixer(block=SAMPLE_RATE // 100)
        self._linked: str | None = None
        self._speaking_source = False  # audio has flowed since the last closing silence
        self.stats = InputStats()
        self.on_empty: Callable[[], None] = lambda: None
        self.on_return: Callable[[], None] = lambda: None
        self.on_linked: Callable[[str | None], None] = lambda _identity: None
        #: A frame from the room was refused (a format the resampler cannot take): dropped.
        self.on_refused: Callable[[], None] = lambda: None
        #: After each frame: (samples the resampler still withholds, arrival time).
        self.on_frame: Callable[[float, float], None] = lambda _withheld, _received: None

    # ------------------------------------------------------------------ policy

    @property
    def linked(self) -> str | None:
        """The caller heard in ``linked`` mode."""
        return self._linked

    @property
    def heard(self) -> list[str]:
        return sorted({r.identity for r in self._readers.values() if not r.muted})

    def human(self, identity: str) -> Human | None:
        """The participant ``identity`` if present (its kind: standard or SIP)."""
        return self._humans.get(identity)

    def track_sid_of(self, identity: str | None) -> str:
        """The heard microphone track of ``identity`` (for user captions), or ``""``."""
        for (who, sid), _reader in self._readers.items():
            if who == identity:
                return sid
        return ""

    def _should_hear(self, identity: str) -> bool:
        return self.mode == "mix" or identity == self._linked

    def _choose_linked(self) -> None:
        if self.mode != "linked":
            return
        if self._linked in self._humans:
            return
        previous = self._linked
        if self.requested_identity and self.requested_identity in self._humans:
            chosen: str | None = self.requested_identity
        elif self.requested_identity and previous is None:
            chosen = None  # wait for the caller the dispatch named
        else:
            chosen = next(iter(self._humans), None)
        self._linked = chosen
        if chosen != previous:
            log.info("input.linked", participant=chosen, previous=previous)
            self.on_linked(chosen)
            if chosen is not None:
                for sid, track in self._tracks.get(chosen, {}).items():
                    self._start_reader(chosen, sid, track)

    # ------------------------------------------------------------------ room events

    def participant_joined(self, human: Human) -> None:
        was_empty = not self._humans
        self._humans.setdefault(human.identity, human)
        if self.mode == "mix":
            for sid, track in self._tracks.get(human.identity, {}).items():
                self._start_reader(human.identity, sid, track)
        self._choose_linked()
        if was_empty:
            self.on_return()

    def participant_left(self, identity: str) -> None:
        if identity not in self._humans:
            return
        for sid in list(self._tracks.get(identity, {})):
            self.track_unsubscribed(identity, sid)
        self._tracks.pop(identity, None)
        del self._humans[identity]
        if identity == self._linked:
            if self.requested_identity == identity:
                self.requested_identity = None  # they left: follow whoever is next
            self._choose_linked()  # logs who follows whom
        if not self._humans:
            self.on_empty()

    def track_subscribed(self, identity: str, track: rtc.Track) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO:
            return  # audio only: video is never read
        self._tracks.setdefault(identity, {})[track.sid] = track
        if identity in self._humans and self._should_hear(identity):
            self._start_reader(identity, track.sid, track)

    def track_unsubscribed(self, identity: str, track_sid: str) -> None:
        self._tracks.get(identity, {}).pop(track_sid, None)
        reader = self._readers.pop((identity, track_sid), None)
        if reader is not None:
            self._stop_reader(reader)

    def track_muted(self, identity: str, track_sid: str) -> None:
        reader = self._readers.get((identity, track_sid))
        if reader is not None and not reader.muted:
            reader.muted = True
            if self.mode == "mix":  # a muted source must not hold the mix back
                for block in self._mixer.remove(identity):
                    self._emit(block)
            self._source_gone(identity)

    def track_unmuted(self, identity: str, track_sid: str) -> None:
        reader = self._readers.get((identity, track_sid))
        if reader is not None and reader.muted:
            reader.muted = False
            if self.mode == "mix":
                self._mixer.add(identity)

    # ------------------------------------------------------------------ readers

    def _default_stream(self, track: rtc.Track) -> AsyncIterator[rtc.AudioFrameEvent]:
        rate, channels, frame_ms = self.stream_rate, self.stream_channels, self.frame_ms
        if not self.routed:
            return rtc.AudioStream.from_track(
                track=track, sample_rate=rate, num_channels=channels, frame_size_ms=frame_ms
            )
        return RoutedAudioStream(
            track, sample_rate=rate, num_channels=channels, frame_size_ms=frame_ms
        )

    def _start_reader(self, identity: str, sid: str, track: rtc.Track) -> None:
        key = (identity, sid)
        if key in self._readers:
            return
        reader = _Reader(identity, track)
        self._readers[key] = reader
        log.info("input.reading", participant=identity, track=sid)
        if self.mode == "mix":
            self._mixer.add(identity)
        reader.task = asyncio.get_running_loop().create_task(
            self._read(reader), name=f"input-{identity}"
        )
        self.stats.heard = self.heard

    def _stop_reader(self, reader: _Reader) -> None:
        if reader.task is not None:
            reader.task.cancel()
        self._source_gone(reader.identity)
        if self.mode == "mix":
            for block in self._mixer.remove(reader.identity):
                self._emit(block)
        self.stats.heard = self.heard

    async def _read(self, reader: _Reader) -> None:
        stream = self._stream_factory(reader.track)
        try:
            async for event in stream:
                if reader.muted:
                    continue
                try:
                    self._frame(reader, event.frame)
                except ResamplingError as exc:  # before any state changed: nothing else lost
                    self._refused(reader, event.frame, exc)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _frame(self, reader: _Reader, frame: rtc.AudioFrame) -> None:
        received = self.clock()
        resampler = reader.resampler
        if (
            resampler is None
            or resampler.in_rate != frame.sample_rate
            or resampler.channels != frame.num_channels
        ):
            if resampler is None:
                resampler = Resampler(frame.sample_rate, SAMPLE_RATE, frame.num_channels)
                human = self._humans.get(reader.identity)
                log.info(  # what the track delivers, read at stream_rate/stream_channels
                    "input.format",
                    participant=reader.identity,
                    kind=_KIND_NAMES.get(human.kind) if human else None,
                    rate=frame.sample_rate,
                    channels=frame.num_channels,
                    frame_ms=frame.samples_per_channel * 1000 // frame.sample_rate,
                )
            else:  # the participant switched devices: hand over without a click
                tail, resampler = resampler.handover(frame.sample_rate, frame.num_channels)
                self.stats.handovers += 1
                self._deliver(reader.identity, tail, received)
            reader.resampler = resampler
        out = resampler.push(frame.data)
        reader.frames += 1
        self.stats.frames += 1
        self._deliver(reader.identity, out, received)
        self.on_frame(resampler.withheld, received)

    def _refused(self, reader: _Reader, frame: rtc.AudioFrame, exc: ResamplingError) -> None:
        """Drop a frame the resampler refused and count it; the caller goes on being heard
        (warned once per track: a stream of them is one problem)."""
        reader.refused += 1
        self.stats.refused_frames += 1
        if reader.refused == 1:
            log.warning(
                "input.frame_refused",
                participant=reader.identity,
                rate=frame.sample_rate,
                channels=frame.num_channels,
                reason=str(exc),
            )
        self.on_refused()

    def _deliver(self, identity: str, samples: NDArray[np.int16], received: float) -> None:
        if not samples.size:
            return
        self._speaking_source = True
        if self.mode == "mix":
            for block in self._mixer.push(identity, samples):
                self._emit(block, received)
        else:
            self._emit(samples, received)

    def _emit(self, samples: NDArray[np.int16], received: float | None = None) -> None:
        self.stats.samples_out += samples.size
        self.sink(samples, self.clock() if received is None else received)

    def _source_gone(self, identity: str) -> None:
        """The heard audio stopped: let the server's VAD close an open turn."""
        if self._speaking_source and not self.heard:
            self._speaking_source = False
            self.stats.closing_silences += 1
            self._emit(self.closing_silence)

    async def aclose(self) -> None:
        tasks = [r.task for r in self._readers.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._readers.clear()
