"""The official ``openai`` SDK client against ``bridge sim`` (a real subprocess), and the CLI."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from websockets.exceptions import ConnectionClosed

from tests.conftest import REPO_ROOT, SimProcess
from tests.simclient import configure, ncc, open_ws, recv, recv_until, send, silence, voiced

GA_RESPONSE_ORDER = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "rate_limits.updated",
]


async def until(conn: AsyncRealtimeConnection, kind: str, timeout: float = 10.0) -> list[Any]:
    """Events up to and including the first of type ``kind``."""
    events: list[Any] = []

    async def loop() -> None:
        while True:
            event = await conn.recv()
            events.append(event)
            if event.type == kind:
                return

    await asyncio.wait_for(loop(), timeout)
    return events


async def append(conn: AsyncRealtimeConnection, samples: np.ndarray) -> None:
    for start in range(0, len(samples), 480):  # 20 ms appends, faster than real time
        chunk = samples[start : start + 480].tobytes()
        await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())


def audio_of(events: list[Any], kind: str = "response.output_audio.delta") -> np.ndarray:
    data = b"".join(base64.b64decode(e.delta) for e in events if e.type == kind)
    return np.frombuffer(data, dtype=np.int16)


async def test_official_sdk_holds_a_conversation_with_bridge_sim_echo(
    sim_process: Callable[..., SimProcess],
) -> None:
    sim = sim_process("--behavior", "echo", "--pace", "2")
    client = AsyncOpenAI(api_key="test", websocket_base_url=sim.url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await asyncio.wait_for(conn.recv(), 10)
        assert created.type == "session.created"
        expires_at = created.model_dump()["session"]["expires_at"]  # not in the SDK model
        assert abs(expires_at - (time.time() + 3600)) < 60

        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": 300,
                            "prefix_padding_ms": 300,
                        }
                    }
                },
            }
        )
        (updated,) = await until(conn, "session.updated")
        turn_detection = updated.session.audio.input.turn_detection
        assert (turn_detection.silence_duration_ms, turn_detection.threshold) == (300, 0.5)

        # Turn 1: 0.5 s silence, 1.0 s of voice at -20 dBFS, 1.0 s silence.
        speech = voiced(1.0)
        await append(conn, np.concatenate([silence(0.5), speech, silence(1.0)]))
        events = await until(conn, "rate_limits.updated")
        by_type: dict[str, Any] = {}
        for event in events:
            by_type.setdefault(event.type, event)
        started = by_type["input_audio_buffer.speech_started"]
        assert 500 - 300 - 10 <= started.audio_start_ms <= 500
        stopped = by_type["input_audio_buffer.speech_stopped"]
        assert abs(stopped.audio_end_ms - 1500) <= 20
        assert by_type["input_audio_buffer.committed"].item_id == started.item_id
        user_item = by_type["conversation.item.added"]
        assert user_item.item.role == "user"
        assert user_item.item.content[0].type == "input_audio"

        reply = audio_of(events)
        assert abs(len(reply) / 24 - 1000) <= 5
        assert ncc(reply, speech) > 0.9
        order = [
            e.type for e in events if e.type.startswith(("response.", "conversation.item", "rate"))
        ]
        after_user_item = [t for t in order if not t.endswith(".delta")][2:]
        assert after_user_item == GA_RESPONSE_ORDER
        done = events[-2].response
        assert done.status == "completed"
        assert done.usage is not None and done.usage.output_token_details is not None
        assert abs(done.usage.output_token_details.audio_tokens - 20) <= 1  # 20 tokens/s
        assert done.usage.input_token_details.audio_tokens >= 10
        transcript = by_type["response.output_audio_transcript.done"].transcript
        assert transcript == "alpha bravo charlie"
        limits = by_type["rate_limits.updated"].rate_limits[0]
        assert limits.name == "tokens" and limits.remaining < limits.limit

        # Turn 2, barged in: as soon as the reply's first audio arrives, the caller speaks.
        await append(conn, np.concatenate([silence(0.3), voiced(2.0), silence(1.0)]))
        first = await until(conn, "response.output_audio.delta")
        await append(conn, voiced(0.2))  # no trailing silence: the caller keeps the floor
        rest = await until(conn, "response.done")
        barge = [e for e in rest if e.type == "input_audio_buffer.speech_started"]
        assert barge, [e.type for e in rest]
        cancelled = rest[-1].response
        assert cancelled.status == "cancelled"
        assert cancelled.status_details.reason == "turn_detected"
        assert cancelled.output[0].status == "incomplete"
        item_id = cancelled.output[0].id
        heard_ms = len(audio_of(first + rest)) / 24
        assert 0 < heard_ms < 2000

        # Truncation past the end is refused with the real message; within it, it works.
        await conn.conversation.item.truncate(
            item_id=item_id, content_index=0, audio_end_ms=int(heard_ms) + 500
        )
        error = (await until(conn, "error"))[-1]
        assert error.error.message == (
            f"Audio content of {int(heard_ms)}ms is already shorter than {int(heard_ms) + 500}ms"
        )
        cut_ms = int(heard_ms // 2)
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=cut_ms)
        truncated = (await until(conn, "conversation.item.truncated"))[-1]
        assert (truncated.item_id, truncated.audio_end_ms) == (item_id, cut_ms)
        await conn.conversation.item.retrieve(item_id=item_id)
        retrieved = (await until(conn, "conversation.item.retrieved"))[-1]
        part = retrieved.item.content[0]
        assert len(base64.b64decode(part.audio)) == cut_ms * 48
        heard_words = (part.transcript or "").split()
        assert heard_words == ["alpha", "bravo", "charlie", "delta", "echo"][: len(heard_words)]
        assert len(heard_words) == -(-cut_ms * 5 // 2000)  # words starting before the cut

        # Nothing to cancel while the caller holds the floor.
        await conn.response.cancel()
        error = (await until(conn, "error"))[-1]
        assert error.error.code == "response_cancel_not_active"
        assert error.error.message == "Cancellation failed: no active response found"


async def test_session_expires_with_session_expired_then_close_1001(
    sim_process: Callable[..., SimProcess],
) -> None:
    sim = sim_process("--expire-after", "0.5")
    ws = await open_ws(sim.url)
    created = await recv(ws)
    assert created["session"]["expires_at"] - time.time() <= 1
    error, _ = await recv_until(ws, "error", timeout=15)
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == "session_expired"
    assert error["error"]["message"] == "Your session hit the maximum duration of 0.5 seconds."
    with pytest.raises(ConnectionClosed):
        await recv(ws, timeout=10)
    assert ws.close_code == 1001
    assert ws.close_reason == error["error"]["message"]


async def test_bridge_sim_logs_to_stderr_and_exits_0_on_sigterm_closing_with_1001(
    sim_process: Callable[..., SimProcess],
) -> None:
    sim = sim_process("--fault", "unknown:1@idle")
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/v1", sim.url)
    ws = await open_ws(sim.url)
    await configure(ws, instructions="Be brief. Speak like a pirate who sells insurance policies.")
    await send(
        ws,
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    )
    await recv_until(ws, "conversation.item.done")
    sim.process.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed):
        await recv_until(ws, "never", timeout=10)
    assert ws.close_code == 1001
    assert sim.process.wait(10) == 0
    log = sim.stderr_text()
    for record in (
        "sim.connection.opened",
        "sim.session.updated",
        "instructions_head='Be brief. Speak like a pirate who sells insurance policies.'",
        "sim.item.created",
        "sim.fault.fired",
        "fault=unknown:1@idle",
        "sim.connection.closed",
    ):
        assert record in log, record


def test_bridge_sim_rejects_a_bad_fault_spec_with_status_2_and_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "sim", "--port", "0", "--fault", "drop@later"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unknown phase 'later'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
