"""Fuzzing the protocol core and a live connection with random and mutated server frames:
no exception escapes, nothing hangs, memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import websockets
from hypothesis import given, settings, strategies as st

from sessions import events as ev
from sessions.conversation import MAX_ITEMS
from sessions.endpoint import Endpoint
from sessions.protocol import MAX_PENDING, MAX_TRACKED, RealtimeProtocol
from sessions.session import RealtimeSession
from sessions.session_config import SessionConfig
from tests import frames as f

PCM = bytes(range(256)) * 4

VALID = [
    f.session_created(),
    f.response_created("resp_1"),
    f.output_item_added("resp_1", "item_a"),
    f.audio_delta("resp_1", "item_a", PCM),
    f.transcript_delta("resp_1", "item_a", "hello"),
    f.audio_done("resp_1", "item_a"),
    f.response_done("resp_1", usage=f.USAGE),
    f.error("server_error", "boom", type="server_error"),
    f.event("input_audio_buffer.speech_started", audio_start_ms=10, item_id="item_u"),
    f.event("input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="item_u"),
    f.event("conversation.item.truncated", item_id="item_a", content_index=0, audio_end_ms=5),
    f.event(
        "rate_limits.updated",
        rate_limits=[{"name": "tokens", "limit": 1, "remaining": 1, "reset_seconds": 1.0}],
    ),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def mutate(frame: dict[str, Any], rng: random.Random, value: Any) -> dict[str, Any]:
    frame = json.loads(json.dumps(frame))
    target: Any = frame
    for _ in range(rng.randint(0, 2)):  # sometimes mutate inside a nested object
        nested = (
            [v for v in target.values() if isinstance(v, dict)] if isinstance(target, dict) else []
        )
        if not nested:
            break
        target = rng.choice(nested)
    keys = list(target) if isinstance(target, dict) else []
    action = rng.randrange(4)
    if keys and action == 0:
        del target[rng.choice(keys)]
    elif keys and action == 1:
        target[rng.choice(keys)] = value
    elif action == 2:
        target[f"x_{rng.randrange(99)}"] = value
    else:
        frame["type"] = rng.choice(
            [
                "response.output_audio.delta",
                "error",
                "response.done",
                "conversation.item.added",
                str(value)[:30],
            ]
        )
    return frame


def assert_only_events(p: RealtimeProtocol) -> None:
    for event in p.events_received():
        assert type(event).__module__ == "sessions.events"


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_raises(text: str) -> None:
    p = RealtimeProtocol()
    p.receive_text(text)
    assert_only_events(p)


@settings(derandomize=True, max_examples=600, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(0, 2**32), json_values)
def test_mutated_frames_never_raise(index: int, seed: int, value: Any) -> None:
    rng = random.Random(seed)
    p = RealtimeProtocol()
    p.create_response()
    frame = mutate(json.loads(VALID[index]), rng, value)
    text = json.dumps(frame)
    if rng.random() < 0.2:
        text = text[: rng.randrange(len(text) + 1)]  # truncated on the wire
    p.receive_text(text)
    p.receive_bytes(text.encode()[:50])
    assert_only_events(p)
    p.truncate("item_a", rng.randrange(5000))  # the core stays usable afterwards
    p.cancel_response()
    p.data_to_send()


def hostile_stream_figures() -> dict[str, int]:
    """Feeds 30,000 hostile frames to one core under tracemalloc; run in a child process.

    tracemalloc must not start or stop while foreign threads allocate (CPython 3.11's
    ``tracemalloc.stop()`` frees its tables under a thread that is still inside a raw-malloc
    hook, gh-128679: CI's suite process, holding the FFI threads of earlier LiveKit tests,
    died of a segfault right after this measurement). A fresh interpreter has no such threads.
    """
    rng = random.Random(7)
    p = RealtimeProtocol()
    baseline = 0
    tracemalloc.start()
    try:
        for n in range(30_000):
            item, resp = f"item_{rng.randrange(10**9)}", f"resp_{rng.randrange(10**9)}"
            kind = n % 6
            if kind == 0:  # odd-length audio for ever-new items
                p.receive_text(
                    json.dumps(
                        {
                            "type": "response.output_audio.delta",
                            "response_id": resp,
                            "item_id": item,
                            "delta": "AAAA" + "AA==",
                        }
                    )
                )
            elif kind == 1:
                p.receive_text(
                    json.dumps(
                        {
                            "type": "conversation.item.added",
                            "item": {
                                "id": item,
                                "type": "message",
                                "role": "assistant",
                                "content": [],
                            },
                        }
                    )
                )
            elif kind == 2:
                p.receive_text(
                    json.dumps(
                        {
                            "type": "response.output_audio_transcript.delta",
                            "response_id": resp,
                            "item_id": "item_same",
                            "delta": "x" * 200,
                        }
                    )
                )
            elif kind == 3:
                p.discard_response(resp)
            elif kind == 4:
                p.commit_audio()  # requests the server never answers
            else:
                p.receive_text(rng.randbytes(64).decode("latin-1"))
            p.events_received()
            p.data_to_send()
            if n == 5_000:
                baseline, _ = tracemalloc.get_traced_memory()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "items": len(p.conversation),
        "pending": p.pending_requests,
        "odd_byte": len(p._odd_byte),
        "discarded": len(p._discarded),
        "growth": current - baseline,
    }


def test_a_hostile_stream_keeps_memory_bounded() -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from tests.test_fuzz import hostile_stream_figures; "
            "print(json.dumps(hostile_stream_figures()))",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,  # a guard against a hang, no more
        check=False,
    )
    assert child.returncode == 0, child.stderr
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    assert figures["items"] <= MAX_ITEMS
    assert figures["pending"] <= MAX_PENDING
    assert figures["odd_byte"] <= MAX_TRACKED and figures["discarded"] <= MAX_TRACKED
    assert figures["growth"] < 8_000_000  # bounded, not growing with the stream


async def test_a_live_connection_survives_a_junk_stream() -> None:
    """A server that answers with junk: the reader counts it, keeps going, closes cleanly."""
    rng = random.Random(11)
    junk: list[str | bytes] = []
    for n in range(400):
        base = json.loads(VALID[n % len(VALID)])
        frame = mutate(base, rng, rng.choice([None, 1, "x", [], {}, -1.5]))
        text = json.dumps(frame)
        junk.append(text[: rng.randrange(len(text))] if n % 7 == 0 else text)
        if n % 11 == 0:
            junk.append(rng.randbytes(rng.randrange(1, 300)))
    sent = asyncio.Event()

    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.send(f.session_created())
        await ws.recv()  # the session.update
        await ws.send(f.event("session.updated", session={"type": "realtime"}))
        for frame in junk:
            await ws.send(frame)
        sent.set()
        await ws.wait_closed()

    async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        events: list[ev.ServerEvent] = []
        session = RealtimeSession(
            Endpoint.compatible(f"ws://127.0.0.1:{port}/v1"), SessionConfig(), handler=events.append
        )
        await session.start()
        reader = asyncio.create_task(session.run())
        await asyncio.wait_for(sent.wait(), 10)
        async with asyncio.timeout(10):  # everything sent is read and handled
            while session.protocol.stats.frames_in < len(junk) + 2:
                await asyncio.sleep(0.01)
        session.append_audio(PCM)  # still usable
        await session.close()
        reader.cancel()
    stats = session.protocol.stats
    assert stats.malformed > 0 and stats.binary_frames > 0
    assert reader.done()
