"""The benchmark's probes: replies found in a listener's audio, latencies, cut points."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.bench.meter import (
    SUBFRAME,
    AgentAudioMeter,
    BargeInProbe,
    InLatencyProbe,
    OutLatencyProbe,
    Reply,
    Truncation,
    barge_in_silences,
    truncation_errors,
    voice_to_voice,
)

SILENT = np.zeros(SUBFRAME, dtype=np.int16)
VOICED = np.full(SUBFRAME, 3, dtype=np.int16)


def feed(meter: AgentAudioMeter, pattern: str, start: float = 0.0) -> float:
    """Push 10 ms frames: '.' silent, '#' voiced; returns the time after the last frame."""
    at = start
    for symbol in pattern:
        at += 0.01
        meter.push(VOICED if symbol == "#" else SILENT, at)
    return at


def test_replies_are_voiced_runs_and_short_gaps_inside_them_are_underruns() -> None:
    meter = AgentAudioMeter()
    feed(meter, "..#####..###" + "." * 40 + "####...")
    replies = meter.replies(merge_gap_s=0.3)
    assert len(replies) == 2
    first, second = replies
    assert first.gaps == 1  # the 20 ms hole inside the first reply
    assert first.heard_ms == pytest.approx(100)  # from its first to its last voiced sample
    assert second.gaps == 0 and second.heard_ms == pytest.approx(40)
    assert [round(r.started_at, 2) for r in replies] == [0.03, 0.53]


def test_a_run_ends_only_after_ten_milliseconds_of_exact_silence() -> None:
    meter = AgentAudioMeter()
    frame = VOICED.copy()
    frame[100:200] = 0  # 100 zero samples inside a frame: not a gap
    meter.push(frame, 0.01)
    meter.push(VOICED, 0.02)
    assert len(meter.runs) == 1 and meter.speaking
    meter.push(SILENT, 0.03)
    assert not meter.speaking
    assert meter.quiet_s == pytest.approx(0.01)


def test_partial_frames_are_counted_to_the_sample() -> None:
    meter = AgentAudioMeter()
    frame = SILENT.copy()
    frame[40:] = 5
    meter.push(frame, 0.01)
    end = VOICED.copy()
    end[100:] = 0
    meter.push(end, 0.02)
    meter.push(SILENT, 0.03)
    (reply,) = meter.replies()
    assert reply.end - reply.start == (SUBFRAME - 40) + 100


def test_input_latency_splits_long_frames_into_the_ten_millisecond_frames_they_gathered() -> None:
    probe = InLatencyProbe()
    # a 50 ms frame received at t=1.0: its five 10 ms parts arrived at 0.96 … 1.00
    probe.received(5 * SUBFRAME, 1.0, frame_ms=50)
    probe.sent(2 * SUBFRAME, 1.005)  # an append reaching the end of the second part
    assert probe.values.array() == pytest.approx([45.0, 35.0])
    probe.sent(5 * SUBFRAME, 1.010)
    assert probe.values.array()[2:] == pytest.approx([30.0, 20.0, 10.0])
    assert probe.dropped_frames(chunk_samples=SUBFRAME) == 0


def test_input_latency_counts_frames_that_never_reached_the_socket() -> None:
    probe = InLatencyProbe()
    for i in range(1, 11):
        probe.received(i * SUBFRAME, i * 0.01)
    probe.sent(2 * SUBFRAME, 0.03)
    assert probe.dropped_frames(chunk_samples=2 * SUBFRAME) == 6


def test_output_latency_matches_captured_frames_to_their_deltas() -> None:
    probe = OutLatencyProbe()
    probe.delta("item_a", 960, 1.000)
    probe.delta("item_a", 960, 1.004)
    probe.playback_started("item_a")
    probe.captured(480, called=1.0010, previous_return=0.0)  # from the first delta
    probe.captured(960, called=1.0200, previous_return=1.0150)  # ends in the second delta
    assert probe.values.array() == pytest.approx([1.0, 5.0])


def test_output_latency_follows_the_latest_item_when_the_engine_does_not_name_it() -> None:
    probe = OutLatencyProbe()
    probe.delta("old", 480, 1.0)
    probe.delta("new", 480, 2.0)
    probe.playback_started(None)
    probe.captured(480, called=2.002, previous_return=0.0)
    assert probe.values.array() == pytest.approx([2.0])


def test_barge_in_stop_counts_only_when_the_agent_was_heard() -> None:
    probe = BargeInProbe(timeout_s=2.0)
    probe.speech_started(1.0, agent_audible=False)  # nobody to stop
    probe.cleared(1.001)
    probe.speech_started(2.0, agent_audible=True)
    probe.cleared(2.0005)
    probe.speech_started(5.0, agent_audible=True)  # never cleared
    probe.finish(8.0)
    assert probe.stops == pytest.approx([0.5])
    assert probe.started == [2.0, 5.0]
    assert probe.missed == 1


def test_truncation_error_compares_with_what_the_listener_heard() -> None:
    replies = [
        Reply(0, 24_000, 1.0, 2.0, 0),  # 1000 ms heard, cut at 2.0
        Reply(48_000, 60_000, 5.0, 5.5, 0),  # finished on its own
    ]
    truncations = [
        Truncation(at=2.001, cause_at=2.0, item_id="a", audio_end_ms=1010),
        Truncation(at=8.0, cause_at=8.0, item_id="b", audio_end_ms=0),  # deleted, unheard
        Truncation(at=9.0, cause_at=9.0, item_id="c", audio_end_ms=120),  # claims 120, none
    ]
    assert truncation_errors(truncations, replies) == pytest.approx([10.0, 0.0, 120.0])


def test_voice_to_voice_is_speech_stopped_to_the_next_reply_heard() -> None:
    replies = [Reply(0, 1, 1.3, 2.0, 0), Reply(0, 1, 6.2, 7.0, 0)]
    stops = [1.0, 4.0, 6.0]
    starts = [0.0, 4.5]  # the caller spoke again at 4.5 before any reply to the 4.0 turn
    assert voice_to_voice(stops, starts, replies) == pytest.approx([300.0, 200.0])


def test_silence_after_a_barge_in_is_measured_to_the_last_audio_heard() -> None:
    replies = [Reply(0, 1, 1.0, 2.012, 0)]
    assert barge_in_silences([2.0], replies) == pytest.approx([12.0])
    assert barge_in_silences([9.0], replies) == []  # nothing was playing
