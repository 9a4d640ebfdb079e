"""Routed audio streams and sources behave like the SDK's own, minus the cross-talk."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.rtc._ffi_client import FfiClient

from bridge.room.routed_audio import RoutedAudioSource, RoutedAudioStream, _Router

RATE = 48_000
FRAME = RATE // 100


def _frame(value: int) -> rtc.AudioFrame:
    return rtc.AudioFrame(np.full(FRAME, value, dtype=np.int16).tobytes(), RATE, 1, FRAME)


async def _first_voiced(stream: object, limit: int = 200) -> np.ndarray:
    count = 0
    async for event in stream:  # type: ignore[attr-defined]
        samples = np.frombuffer(event.frame.data, dtype=np.int16)
        if np.any(samples):
            return samples
        count += 1
        if count > limit:
            break
    raise AssertionError("no audio arrived")


async def test_a_routed_stream_reads_its_track_like_the_sdk_stream() -> None:
    source = rtc.AudioSource(RATE, 1, queue_size_ms=50)
    track = rtc.LocalAudioTrack.create_audio_track("t", source)
    routed = RoutedAudioStream(track, sample_rate=RATE, num_channels=1, frame_size_ms=10)
    sdk = rtc.AudioStream.from_track(
        track=track, sample_rate=RATE, num_channels=1, frame_size_ms=10
    )
    readers = [asyncio.ensure_future(_first_voiced(s)) for s in (routed, sdk)]
    for _ in range(5):
        await source.capture_frame(_frame(1234))
    got_routed, got_sdk = await asyncio.gather(*readers)
    assert np.array_equal(got_routed, got_sdk)
    assert got_routed.size == FRAME and int(got_routed[0]) == 1234
    await routed.aclose()
    await sdk.aclose()
    await source.aclose()


async def test_two_routed_streams_each_get_only_their_own_track() -> None:
    sources = [rtc.AudioSource(RATE, 1, queue_size_ms=50) for _ in range(2)]
    tracks = [rtc.LocalAudioTrack.create_audio_track(f"t{i}", s) for i, s in enumerate(sources)]
    streams = [RoutedAudioStream(t, sample_rate=RATE, frame_size_ms=10) for t in tracks]
    readers = [asyncio.ensure_future(_first_voiced(s)) for s in streams]
    for _ in range(5):
        await asyncio.gather(
            sources[0].capture_frame(_frame(111)), sources[1].capture_frame(_frame(222))
        )
    first, second = await asyncio.gather(*readers)
    assert int(first[0]) == 111 and int(second[0]) == 222
    for stream in streams:
        await stream.aclose()


async def test_closing_a_routed_stream_ends_its_iteration_and_its_route() -> None:
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("t", source)
    stream = RoutedAudioStream(track, sample_rate=RATE, frame_size_ms=10)
    router = _Router.get()
    assert stream._handle_id in router._streams

    async def read_all() -> int:
        return sum([1 async for _ in stream])

    reader = asyncio.ensure_future(read_all())
    await asyncio.sleep(0)  # let the reader start waiting: closing must wake it
    await stream.aclose()
    await asyncio.wait_for(reader, 5)  # closing ended the iteration (a hang times out here)
    assert stream._handle_id not in router._streams


async def test_the_router_is_one_subscriber_that_lets_nothing_through() -> None:
    router = _Router.get()
    mine = [s for s in FfiClient.instance.queue._subscribers if s[2] == router._route]
    assert len(mine) == 1
    assert mine[0][0].empty()
    sources = [RoutedAudioSource(24_000, 1, queue_size_ms=50) for _ in range(3)]
    before = router.routed
    frame = rtc.AudioFrame(np.ones(240, dtype=np.int16).tobytes(), 24_000, 1, 240)
    await asyncio.gather(*(s.capture_frame(frame) for s in sources))
    assert router.routed == before + 3  # one completion each, to its own capture
    assert mine[0][0].empty() and not router._captures
    for source in sources:
        await source.aclose()


async def test_a_routed_source_captures_paces_and_clears_like_the_sdk_source() -> None:
    source = RoutedAudioSource(24_000, 1, queue_size_ms=100)
    track = rtc.LocalAudioTrack.create_audio_track("agent", source)
    stream = RoutedAudioStream(track, sample_rate=24_000, frame_size_ms=10)
    reader = asyncio.ensure_future(_first_voiced(stream))
    frame = rtc.AudioFrame(np.full(480, 77, dtype=np.int16).tobytes(), 24_000, 1, 480)
    for _ in range(8):  # 160 ms into a 100 ms queue: the later captures wait for room
        await source.capture_frame(frame)
    assert 0.0 < source.queued_duration <= 0.2
    assert int((await reader)[0]) == 77
    source.clear_queue()
    assert source.queued_duration == 0.0
    await source.wait_for_playout()  # nothing queued: returns at once
    await stream.aclose()
    await source.aclose()


async def test_an_empty_frame_is_ignored() -> None:
    source = RoutedAudioSource(24_000, 1)
    await source.capture_frame(rtc.AudioFrame(b"", 24_000, 1, 0))
    assert source.queued_duration == 0.0
    await source.aclose()


def test_an_untested_sdk_version_is_refused_at_import() -> None:
    """The module relies on the SDK's private FFI internals: another version fails loudly."""
    import subprocess
    import sys

    code = "from livekit import rtc; rtc.__version__ = '9.9.9'; import bridge.room.routed_audio"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "tested with livekit 1.1.21" in done.stderr and "9.9.9 is installed" in done.stderr


CANCELLED_MID_CAPTURE = """
import asyncio
import numpy as np
from livekit import rtc
from bridge.room.routed_audio import RoutedAudioSource

async def main() -> None:
    source = RoutedAudioSource(24000, 1, queue_size_ms=200)
    rtc.LocalAudioTrack.create_audio_track("t", source)
    frame = rtc.AudioFrame(np.full(240, 1000, np.int16).tobytes(), 24000, 1, 240)
    captured = 0

    async def play() -> None:
        nonlocal captured
        while True:
            await source.capture_frame(frame)
            captured += 1

    player = asyncio.create_task(play())
    while captured < 30:  # the 200 ms queue is full: the next capture waits for room
        await asyncio.sleep(0.01)
    player.cancel()  # mid-capture, as a call's playout is cancelled when the call ends
    await asyncio.gather(player, return_exceptions=True)
    await source.aclose()
    print("closed", flush=True)

asyncio.run(main())
"""


def test_a_capture_cancelled_mid_flight_completes_before_the_source_closes() -> None:
    """The process exits right after the close: a completion still owed by the native side
    would then arrive after the FFI shut down, and livekit_ffi logs it as an error (what
    Ctrl-C in ``bridge try`` printed before the close waited for it)."""
    done = subprocess.run(
        [sys.executable, "-c", CANCELLED_MID_CAPTURE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0 and done.stdout == "closed\n", done.stderr
    assert "Failed to send callback" not in done.stderr and "ERROR" not in done.stderr, done.stderr
