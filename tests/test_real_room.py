"""A real LiveKit server in the loop: ``bridge start`` dispatched by name, callers over WebRTC.

The worker is a ``bridge start`` process registered with ``livekit-server`` (``tests/realroom``),
the model is the echo simulator, the callers are real ``livekit`` rtc participants: what they
say goes through Opus to the server and the agent, what the agent says comes back through Opus,
and every figure here is read from what the caller recorded.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr

from bridge.local.heard import Heard, analyse, resemblance
from bridge.local.livekit_server import Credentials
from bridge.local.wavfile import demo_recording, read_wav
from bridge.room.caller import RoomCaller
from tests.realroom import (
    SimProcess,
    Worker,
    clean_env,
    dispatch,
    journal_frames,
    room_name,
    token,
)

HEAR = 24_000


def echoes(reply: np.ndarray, said: np.ndarray) -> float:
    """The share of what the caller heard in ``reply`` that repeats ``said`` (both at 24 kHz).

    The reply's 100 ms pieces are looked for in the utterance (``resemblance``, at 0.7 after
    two Opus passes): a reply cut short, or starting a little into the utterance (the model's
    VAD reports the onset once it is sure), still repeats it piece for piece, and the
    receiver's jitter buffer stretching the first half second of a talkspurt (measured: up to
    40 ms) shifts 100 ms pieces too little to matter. Replies to the other utterance score 0.
    """
    return resemblance(said, reply, HEAR, piece_s=0.1, match=0.7)


def demo_at(rate: int) -> np.ndarray:
    wav = read_wav(demo_recording())
    x = soxr.resample(wav.mono().astype(np.float32), wav.rate, rate, "VHQ")
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


async def join(livekit: Credentials, room: str, identity: str, **kwargs: Any) -> RoomCaller:
    """A caller in ``room``, microphone published."""
    kind = kwargs.pop("kind", "")
    caller = RoomCaller(identity, **kwargs)
    await caller.connect(livekit.url, token(livekit, room, identity, kind=kind))
    await caller.publish()
    return caller


async def listening(caller: RoomCaller, *, replies: int = 0, timeout: float = 30) -> None:
    """Until the agent is listening again after ``replies`` replies (its state, as the caller
    sees it: a stock frontend's view)."""
    await caller.until(
        lambda: (
            caller.state_values().count("speaking") >= replies and caller.agent_state == "listening"
        ),
        timeout,
    )


class BargeInCall:
    """The bundled recording at 48 kHz through the whole chain: a question, its echo cut by a
    correction, the correction's echo. Run once for every test of this module."""

    said: np.ndarray
    heard: np.ndarray
    figures: Heard
    caller: RoomCaller
    truncations: list[dict[str, Any]]
    transcripts: list[str]
    started: float


@pytest.fixture(scope="module")
def barge_in(livekit: Credentials, bridge_worker: Worker, realtime_sim: SimProcess) -> BargeInCall:
    call = BargeInCall()

    async def main() -> None:
        room = room_name("barge-in")
        call.said = demo_at(48_000)
        call.started = time.monotonic()
        caller = call.caller = await join(livekit, room, "caller-1")
        try:
            await dispatch(livekit, room, {"profile": "echo-test", "participant": "caller-1"})
            await listening(caller)
            await caller.play(call.said)
            silence = asyncio.ensure_future(caller.silence(30))
            await listening(caller, replies=2)
            await caller.until(lambda: len([s for s in caller.captions() if s.closed_at]) >= 2)
            silence.cancel()
        except TimeoutError:
            raise AssertionError(stuck(caller, bridge_worker)) from None
        finally:
            call.heard = caller.heard()
            call.said = caller.as_played(call.said)  # the source's time line (a busy machine)
            await caller.aclose()

    asyncio.run(main())
    call.truncations = [
        f
        for f in journal_frames(realtime_sim, call.started, "in")
        if f["type"] == "conversation.item.truncate"
    ]
    call.transcripts = [
        part.get("transcript", "")
        for f in journal_frames(realtime_sim, call.started, "out")
        if f["type"] == "response.done"
        for item in f["response"]["output"]
        for part in item.get("content", [])
    ]
    call.figures = analyse(
        call.said,
        48_000,
        call.heard,
        HEAR,
        truncations_ms=[t["audio_end_ms"] for t in call.truncations],
    )
    print("\nas heard:", call.figures.summary())
    return call


def stuck(caller: RoomCaller, worker: Worker) -> str:
    """What a caller saw, and the worker's last records, when a wait ran out."""
    records = "\n".join(
        f"  {r.get('event')} {r.get('reason', '')}"
        for r in worker.records()[-15:]
        if r.get("level") != "debug"
    )
    captions = [(s.text, s.closed_at is not None) for s in caller.streams]
    return (
        f"caller {caller.identity} timed out: agent {caller.agent_identity}, states"
        f" {caller.state_values()}, captions {captions}; the worker's last records:\n{records}"
    )


def test_the_echo_of_the_question_is_heard_and_cut_within_300_ms(barge_in: BargeInCall) -> None:
    figures = barge_in.figures
    assert len(figures.utterances) == 2 and len(figures.replies) == 2, figures
    (q_start, q_end), _ = figures.utterances
    (r_start, r_end), _ = figures.replies
    assert q_end < r_start
    reply = barge_in.heard[int(r_start * HEAR) : int(r_end * HEAR)]
    question = demo_at(HEAR)[int(q_start * HEAR) : int(q_end * HEAR)]
    assert echoes(reply, question) >= 0.7, "the echo does not resemble the question"
    [stop] = figures.barge_in_stop_ms
    assert 0 < stop <= 300, f"the agent was still heard {stop:.0f} ms after the caller spoke"


def test_the_truncation_sent_matches_what_the_caller_heard(barge_in: BargeInCall) -> None:
    [truncation] = barge_in.truncations
    [error] = barge_in.figures.truncation_error_ms
    assert truncation["audio_end_ms"] > 0
    assert abs(error) <= 40, f"audio_end_ms {truncation['audio_end_ms']}, off by {error:.0f} ms"


def test_the_correction_is_answered(barge_in: BargeInCall) -> None:
    figures = barge_in.figures
    assert len(figures.mouth_to_ear_ms) == 2
    _, (c_start, c_end) = figures.utterances
    _, (r_start, r_end) = figures.replies
    assert c_end < r_start
    reply = barge_in.heard[int(r_start * HEAR) : int(r_end * HEAR)]
    correction = demo_at(HEAR)[int(c_start * HEAR) : int(c_end * HEAR)]
    assert echoes(reply, correction) >= 0.7
    (q_start, q_end), _ = figures.utterances
    question = demo_at(HEAR)[int(q_start * HEAR) : int(q_end * HEAR)]
    assert echoes(reply, question) < 0.3  # the measure tells one utterance from another


def test_the_caller_sees_the_agent_state_change(barge_in: BargeInCall) -> None:
    states = barge_in.caller.state_values()
    assert states[states.index("listening") :] == [
        "listening",
        "thinking",
        "speaking",
        "listening",  # the question; its echo cut by the caller
        "thinking",
        "speaking",
        "listening",  # the correction and its answer
    ]


def test_the_caller_receives_captions_with_only_what_was_heard(barge_in: BargeInCall) -> None:
    caller = barge_in.caller
    first, second = caller.captions()
    for stream in (first, second):
        assert stream.sender == caller.agent_identity
        assert stream.attributes["lk.transcription_final"] == "false"
        assert stream.final_attributes["lk.transcription_final"] == "true"
        assert stream.attributes["lk.transcribed_track_id"] == caller.agent_track_sid
        assert stream.attributes["lk.segment_id"].startswith("SG_")
    assert first.attributes["lk.segment_id"] != second.attributes["lk.segment_id"]
    full_first, full_second = barge_in.transcripts
    heard = first.text.strip()
    assert heard and full_first.startswith(heard) and heard != full_first.strip()
    assert second.text.strip() == full_second.strip()
    finals = [seg.text.strip() for _, _, seg in caller.transcriptions if seg.final]
    assert finals == [heard, full_second.strip()]  # the legacy transcription events agree


def test_bridge_try_through_the_server(livekit: Credentials, tmp_path: Path) -> None:
    """``bridge try --livekit-url``: the agent in-process, dispatched by the server; OUT.wav
    what the caller received; the summary says what the caller experienced."""
    summary, out = run_try(livekit, tmp_path)
    assert summary["exit_code"] == 0, summary["errors"]
    assert summary["responses"] == 2 and summary["interruptions"] == 1
    heard = summary["heard"]
    assert len(heard["mouth_to_ear_ms"]) == 2, heard
    [stop] = heard["barge_in_stop_heard_ms"] or [None]
    assert stop is not None, heard
    assert 0 < stop <= 300
    [error] = heard["truncation_error_heard_ms"]
    assert abs(error) <= 40
    wav = read_wav(out)
    assert wav.rate == HEAR and abs(wav.seconds - summary["output_seconds"]) < 0.01
    (r_start, r_end), _ = heard["replies"]
    (q_start, q_end), _ = heard["utterances"]
    reply = wav.samples[int(r_start * HEAR) : int(r_end * HEAR)]
    assert echoes(reply, demo_at(HEAR)[int(q_start * HEAR) : int(q_end * HEAR)]) >= 0.7


def test_bridge_try_dispatches_a_running_worker(
    livekit: Credentials, bridge_worker: Worker, tmp_path: Path
) -> None:
    """``--agent-name``: an already running ``bridge start`` answers; only what the caller
    experienced is known."""
    summary, _ = run_try(livekit, tmp_path, "--agent-name", "bridge-test", "--profile", "echo-test")
    assert summary["exit_code"] == 0, summary["errors"]
    assert len(summary["heard"]["mouth_to_ear_ms"]) == 2
    assert summary["truncations"] == [] and summary["notes"]  # the agent's figures are elsewhere
    assert summary["states"][-1] == "listening"


def run_try(livekit: Credentials, tmp_path: Path, *extra: str) -> tuple[dict[str, Any], Path]:
    out = tmp_path / "out.wav"
    env = clean_env(LIVEKIT_API_KEY=livekit.api_key, LIVEKIT_API_SECRET=livekit.api_secret)
    command = [sys.executable, "-m", "bridge", "try", "--input", str(demo_recording())]
    command += ["--output", str(out), "--livekit-url", livekit.url, "--json", *extra]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), out
