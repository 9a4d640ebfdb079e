"""Playout on the rtc loopback: what the accounting says left the source is what a listener
received; barge-in stops the audio at once and refuses the rest of the item."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc

from bridge.call.playout import SAMPLE_RATE, Playout
from bridge.room.listener import Listener

FRAME = SAMPLE_RATE // 100  # 10 ms


def tone(seconds: float, value: int = 3000) -> np.ndarray:
    n = int(seconds * SAMPLE_RATE)
    signal = value * np.sin(2 * np.pi * 440 * np.arange(n) / SAMPLE_RATE)
    out = np.rint(signal).astype(np.int16)
    out[out == 0] = 1  # never exactly silent, so the listener can count every sample
    return out


@pytest.fixture
async def rig():
    source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    track = rtc.LocalAudioTrack.create_audio_track("agent", source)
    listener = Listener(track)
    playout = Playout(source)
    events: list[str] = []
    playout.on_item_started = lambda item: events.append(f"start {item}")
    playout.on_idle = lambda: events.append("idle")
    task = asyncio.create_task(playout.run())
    yield playout, listener, events
    task.cancel()
    await listener.aclose()
    await source.aclose()


async def test_a_whole_reply_is_played_and_accounted(rig) -> None:
    playout, listener, events = rig
    audio = tone(0.5)
    playout.begin_item("item_a")
    for start in range(0, audio.size, 1920):  # 40 ms deltas
        playout.push("item_a", audio[start : start + 1920].tobytes())
    playout.end_item("item_a")
    await listener.until(lambda: listener.voiced >= audio.size)
    await listener.until(lambda: "idle" in events)
    assert events == ["start item_a", "idle"]
    assert playout.played_samples("item_a") == audio.size
    assert listener.voiced == audio.size
    assert playout.stats.underruns == 0


async def test_barge_in_stops_now_and_accounts_what_was_heard(rig) -> None:
    playout, listener, events = rig
    audio = tone(2.0)
    playout.begin_item("item_a")
    playout.push("item_a", audio)
    await listener.until(lambda: listener.voiced >= SAMPLE_RATE * 3 // 10)  # 300 ms heard
    cut = playout.interrupt()
    heard_after_cut = listener.voiced
    playout.push("item_a", tone(0.5))  # late audio of the interrupted item: refused
    received = listener.samples
    await listener.until(lambda: listener.samples >= received + 20 * FRAME)  # 200 ms more
    assert set(cut) == {"item_a"}
    # Frames in flight when the queue was cleared may still arrive; nothing after that.
    assert listener.voiced - heard_after_cut <= 4 * FRAME
    # The accounting matches what the listener received: a frame or two on a quiet machine
    # (the SDK derives the queue from capture times); 40 ms is the acceptance bound.
    assert abs(cut["item_a"] - listener.voiced) <= 4 * FRAME
    assert playout.played_samples("item_a") == cut["item_a"]


async def test_interrupting_before_any_audio_reports_zero(rig) -> None:
    playout, _listener, _events = rig
    playout.begin_item("item_b")
    assert playout.interrupt() == {"item_b": 0}


async def test_the_buffer_is_bounded_and_overflow_counted() -> None:
    source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=100)
    playout = Playout(source, max_buffer_s=0.1)
    playout.push("item_a", tone(0.25))
    assert playout.stats.buffered_samples == SAMPLE_RATE // 10
    assert playout.stats.dropped_samples == int(0.25 * SAMPLE_RATE) - SAMPLE_RATE // 10
    await source.aclose()
