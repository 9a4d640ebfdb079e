"""Who is heard: linked and mix policies, joins, leaves, mutes, unsubscribes, rate changes.

Tracks are real ``rtc`` loopback tracks; their audio is delivered by a stream factory that
yields ``rtc.AudioFrame``s on demand (what ``rtc.AudioStream`` would yield, minus real time),
so each test controls exactly which frames arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import rtc

from bridge.call.room_input import RoomInput
from bridge.room.participant import Human

RATE = 24_000


class Feeds:
    """A frame queue per track; the input reads them through its stream factory."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[rtc.AudioFrame | None]] = {}

    def factory(self, track: rtc.Track) -> AsyncIterator[rtc.AudioFrameEvent]:
        queue = self.queues.setdefault(track.name, asyncio.Queue())

        async def frames() -> AsyncIterator[rtc.AudioFrameEvent]:
            while (frame := await queue.get()) is not None:
                yield rtc.AudioFrameEvent(frame)

        return frames()

    def send(
        self, track: rtc.Track, value: int, *, rate: int = 48_000, channels: int = 1, ms: int = 10
    ) -> None:
        n = rate * ms // 1000
        data = np.full(n * channels, value, dtype=np.int16)
        frame = rtc.AudioFrame(data.tobytes(), rate, channels, n)
        self.queues.setdefault(track.name, asyncio.Queue()).put_nowait(frame)


class Sink:
    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []

    def __call__(self, samples: np.ndarray, received: float) -> None:
        self.chunks.append(samples.copy())

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


def track(name: str) -> rtc.LocalAudioTrack:
    source = rtc.AudioSource(48_000, 1)
    return rtc.LocalAudioTrack.create_audio_track(name, source)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def feeds() -> Feeds:
    return Feeds()


def make_input(feeds: Feeds, sink: Sink, **kw: object) -> RoomInput:
    return RoomInput(sink=sink, stream_factory=feeds.factory, closing_silence_ms=100, **kw)


async def test_linked_hears_the_first_human_only(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink)
    alice, bob = track("alice-mic"), track("bob-mic")
    room.participant_joined(Human("alice"))
    room.participant_joined(Human("bob"))
    room.track_subscribed("alice", alice)
    room.track_subscribed("bob", bob)
    for _ in range(10):
        feeds.send(alice, 1000)
        feeds.send(bob, 7000)
    await settle()
    assert room.linked == "alice" and room.heard == ["alice"]
    assert sink.audio.size > 0
    assert np.abs(sink.audio[-1000:].astype(int) - 1000).max() <= 2  # alice's level
    assert sink.audio.max() < 2000  # never bob's
    await room.aclose()


async def test_linked_follows_the_next_human_when_the_caller_leaves(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink)
    empty: list[str] = []
    room.on_empty = lambda: empty.append("empty")
    alice, bob = track("alice-mic"), track("bob-mic")
    room.participant_joined(Human("alice"))
    room.track_subscribed("alice", alice)
    feeds.send(alice, 1000)
    await settle()
    room.participant_joined(Human("bob"))
    room.track_subscribed("bob", bob)
    room.participant_left("alice")
    assert room.linked == "bob"
    for _ in range(5):
        feeds.send(bob, 7000)
    await settle()
    assert np.abs(sink.audio[-10:].astype(int) - 7000).max() <= 2
    room.participant_left("bob")
    assert empty == ["empty"] and room.linked is None
    await room.aclose()


async def test_the_caller_named_in_metadata_is_waited_for(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink, linked_identity="carol")
    bob, carol = track("bob-mic"), track("carol-mic")
    room.participant_joined(Human("bob"))
    room.track_subscribed("bob", bob)
    feeds.send(bob, 7000)
    await settle()
    assert room.linked is None and sink.audio.size == 0  # not bob: carol was named
    room.participant_joined(Human("carol"))
    room.track_subscribed("carol", carol)
    for _ in range(5):
        feeds.send(carol, 3000)
    await settle()
    assert room.linked == "carol"
    assert np.abs(sink.audio[-100:].astype(int) - 3000).max() <= 2
    assert sink.audio.max() < 4000  # never bob's level
    await room.aclose()


async def test_mix_hears_everyone_summed(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink, mode="mix")
    alice, bob = track("alice-mic"), track("bob-mic")
    for who, t in (("alice", alice), ("bob", bob)):
        room.participant_joined(Human(who))
        room.track_subscribed(who, t)
    for _ in range(10):  # frames arrive interleaved, as in real time
        feeds.send(alice, 1000)
        feeds.send(bob, 2000)
        await settle()
    assert room.heard == ["alice", "bob"]
    assert sink.audio.size >= 5 * 240
    tail = sink.audio[-600:].astype(int)
    assert np.abs(tail - 3000).max() <= 4  # past the resamplers' ramp-in: both, summed
    await room.aclose()


async def test_muting_the_caller_closes_the_turn_and_stops_listening(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink)
    alice = track("alice-mic")
    room.participant_joined(Human("alice"))
    room.track_subscribed("alice", alice)
    for _ in range(5):
        feeds.send(alice, 1000)
    await settle()
    before = sink.audio.size
    room.track_muted("alice", alice.sid)
    assert room.stats.closing_silences == 1
    assert sink.audio.size == before + 2400 and not sink.audio[before:].any()  # 100 ms of 0
    feeds.send(alice, 1000)  # frames while muted are not heard
    await settle()
    assert sink.audio.size == before + 2400
    room.track_unmuted("alice", alice.sid)
    feeds.send(alice, 1000)
    await settle()
    assert sink.audio.size > before + 2400
    await room.aclose()


async def test_an_unsubscribed_track_is_no_longer_read(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink)
    alice = track("alice-mic")
    room.participant_joined(Human("alice"))
    room.track_subscribed("alice", alice)
    feeds.send(alice, 1000)
    await settle()
    room.track_unsubscribed("alice", alice.sid)
    size = sink.audio.size
    feeds.send(alice, 1000)
    await settle()
    assert room.heard == [] and sink.audio.size == size
    await room.aclose()


async def test_video_tracks_are_ignored(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink)
    video = rtc.LocalVideoTrack.create_video_track("cam", rtc.VideoSource(16, 16))
    room.participant_joined(Human("alice"))
    room.track_subscribed("alice", video)
    assert room.heard == []
    await room.aclose()


async def test_a_rate_change_mid_call_is_handed_over_without_a_click(feeds: Feeds) -> None:
    sink = Sink()
    room = make_input(feeds, sink)
    alice = track("alice-mic")
    room.participant_joined(Human("alice"))
    room.track_subscribed("alice", alice)

    def tone(rate: int, n0: int) -> np.ndarray:
        return 8000 * np.sin(2 * np.pi * 200 * (np.arange(rate // 100) + n0) / rate)

    for k in range(30):  # 300 ms at 48 kHz stereo, then 300 ms at 16 kHz mono
        frame = np.repeat(tone(48_000, k * 480), 2).astype(np.int16)
        feeds.queues.setdefault(alice.name, asyncio.Queue()).put_nowait(
            rtc.AudioFrame(frame.tobytes(), 48_000, 2, 480)
        )
    for k in range(30):
        frame = tone(16_000, (k + 90) * 160).astype(np.int16)
        feeds.queues[alice.name].put_nowait(rtc.AudioFrame(frame.tobytes(), 16_000, 1, 160))
    await settle()
    audio = sink.audio.astype(np.int32)
    assert room.stats.handovers == 1
    assert abs(audio.size - 600 * 24) <= 24 * 40  # ~600 ms out, within the resamplers' delays
    # No click: no sample-to-sample step bigger than the 200 Hz tone's own largest step.
    largest_step = 8000 * 2 * np.pi * 200 / RATE
    assert np.abs(np.diff(audio)).max() <= largest_step * 1.5
    await room.aclose()


async def test_a_frame_the_resampler_refuses_is_counted_and_dropped(feeds: Feeds) -> None:
    """A frame in a format nothing can take (nine channels, 300 kHz) is dropped and counted;
    the frames around it are heard, and so is the caller afterwards."""
    sink = Sink()
    room = make_input(feeds, sink)
    refused: list[str] = []
    room.on_refused = lambda: refused.append("frame")
    mic = track("alice-mic")
    room.participant_joined(Human("alice"))
    room.track_subscribed("alice", mic)
    feeds.send(mic, 1000)
    feeds.send(mic, 1000, channels=9)  # more channels than the resampler mixes down
    feeds.send(mic, 1000, rate=300_000)  # above any rate a room or a WAV carries
    for _ in range(10):
        feeds.send(mic, 3000)
    await settle()
    assert refused == ["frame", "frame"] and room.stats.refused_frames == 2
    assert room.heard == ["alice"]  # still reading the track
    assert np.abs(sink.audio[-1000:].astype(int) - 3000).max() <= 2  # and still heard
    await room.aclose()
