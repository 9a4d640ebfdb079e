"""Our own ``sessions`` client against the simulator over a real socket: the same scenarios
the official SDK test holds, plus what the client adds (clamping, classification, counting).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest
import websockets

from sessions import events as ev
from sessions.connection import Connection, ConnectionOptions
from sessions.endpoint import Endpoint
from sessions.errors import (
    ConnectionClosedError,
    ErrorKind,
    HandshakeRejected,
    SessionUpdateRejected,
)
from sessions.session import RealtimeSession
from tests.sessionkit import CONFIG, EventLog, supervisor
from tests.simclient import ncc, utterance, voiced


def reply_audio(log: EventLog, item_id: str) -> np.ndarray:
    data = b"".join(d.pcm for d in log.of(ev.AudioDelta) if d.item_id == item_id)
    return np.frombuffer(data, dtype=np.int16)


async def test_a_conversation_through_our_client(simulator) -> None:
    sim = await simulator(behavior="echo", pace=float("inf"))
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        caller = utterance(lead=0.5, speech=1.0, tail=0.6)
        client.append_audio(caller)
        done = await log.next(ev.ResponseDone)
        await log.next(ev.RateLimitsUpdated)
    finally:
        await client.close()
    started = log.of(ev.SpeechStarted)[0]
    # audio_start_ms includes the 300 ms of prefix padding before the onset at 500 ms
    assert 150 <= started.audio_start_ms <= 560
    stopped = log.of(ev.SpeechStopped)[0]
    assert 1450 <= stopped.audio_end_ms <= 1560
    order = [type(e) for e in log.events]
    for earlier, later in [
        (ev.SpeechStarted, ev.SpeechStopped),
        (ev.SpeechStopped, ev.InputCommitted),
        (ev.InputCommitted, ev.ResponseCreated),
        (ev.ResponseCreated, ev.AudioDelta),
        (ev.AudioDelta, ev.ResponseDone),
    ]:
        assert order.index(earlier) < order.index(later), (earlier, later)
    assert done.status == "completed"
    item_id = log.of(ev.AudioDelta)[0].item_id
    audio = reply_audio(log, item_id)
    assert ncc(audio, voiced(1.0)) > 0.9  # the echo resembles the caller
    assert done.usage is not None
    assert abs(done.usage.audio_out - 20 * audio.size / 24_000) <= 2
    assert client.usage.audio_out == done.usage.audio_out
    assert client.cost_usd > 0


async def test_barge_in_cancels_the_response_with_turn_detected(simulator) -> None:
    sim = await simulator(behavior="echo", pace=1.0)  # the reply takes its real time
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.5, tail=0.5))
        await log.next(ev.AudioDelta)
        client.append_audio(utterance(lead=0.0, speech=0.5, tail=0.0))  # talks over it
        done = await log.next(ev.ResponseDone)
    finally:
        await client.close()
    assert (done.status, done.reason) == ("cancelled", "turn_detected")
    assert len(log.of(ev.SpeechStarted)) == 2


async def test_truncation_is_confirmed_and_a_late_one_is_benign(simulator) -> None:
    sim = await simulator(behavior="echo", pace=float("inf"))
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        await log.next(ev.ResponseDone)
        item_id = log.of(ev.AudioDelta)[0].item_id
        record = client.conversation.get(item_id)
        assert record is not None
        received = record.audio_ms
        first = client.truncate(item_id, received // 2, heard_text="heard part")
        truncated = await log.next(ev.ItemTruncated)
        # Our mirror still counts what arrived, so this goes past the server's new end:
        second = client.truncate(item_id, received - 5)
        error = await log.next(ev.ErrorReceived)
    finally:
        await client.close()
    assert first.action == "truncate" and truncated.audio_end_ms == received // 2
    assert second.action == "truncate"
    assert "already shorter than" in error.error.message
    assert error.error.kind is ErrorKind.BENIGN
    assert error.error.request_type == "conversation.item.truncate"
    assert record.replay_text == "heard part"


async def test_truncation_past_the_audio_received_is_clamped(simulator) -> None:
    sim = await simulator(behavior="echo", pace=float("inf"))
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        await log.next(ev.AudioDelta)  # part of the reply has arrived
        item_id = log.of(ev.AudioDelta)[0].item_id
        result = client.truncate(item_id, played_ms=60_000)
        await log.until(lambda: bool(log.of(ev.ItemTruncated) or log.of(ev.ErrorReceived)))
    finally:
        await client.close()
    assert result.audio_end_ms == result.received_ms < 60_000
    assert log.of(ev.ItemTruncated) and not log.of(ev.ErrorReceived)


async def test_cancel_with_nothing_active_sends_nothing(simulator) -> None:
    sim = await simulator()
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.cancel_response()
        client.create_response()  # a response now, to show the socket is healthy
        await log.next(ev.ResponseDone)
    finally:
        await client.close()
    assert not log.of(ev.ErrorReceived)


async def test_a_rejected_update_is_a_clear_error(simulator) -> None:
    sim = await simulator(behavior="tone", pace=float("inf"))
    log = EventLog()
    session = RealtimeSession(Endpoint.compatible(sim.url, api_key="k"), CONFIG, handler=log)
    await session.start()
    reader = asyncio.create_task(session.run())
    try:
        session.create_response()
        await log.next(ev.ResponseDone)
        session.configure(replace(CONFIG, voice="cedar"))  # voice is fixed after audio
        error = await log.next(ev.ErrorReceived)
    finally:
        await session.close()
        reader.cancel()
    assert isinstance(error.error, SessionUpdateRejected)
    assert error.error.kind is ErrorKind.FATAL
    assert error.error.request_type == "session.update"


async def test_a_refused_handshake_names_the_cause_and_hides_the_key(simulator) -> None:
    sim = await simulator(api_key="the-right-key")
    endpoint = Endpoint.compatible(sim.url, api_key="sk-wrong-0123456789abcdef")
    with pytest.raises(HandshakeRejected) as caught:
        await Connection.open(endpoint)
    assert caught.value.status == 401 and caught.value.fatal
    assert "API key was rejected" in str(caught.value)
    assert "0123456789abcdef" not in str(caught.value)


@pytest.mark.parametrize("fault", ["malformed:5@agent_speaking", "unknown:6@agent_speaking"])
async def test_bad_frames_are_counted_and_the_reply_goes_on(simulator, fault: str) -> None:
    from sessions.simulator import parse_fault

    sim = await simulator(behavior="echo", pace=float("inf"), faults=(parse_fault(fault),))
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        done = await log.next(ev.ResponseDone)
        stats = client.current_socket.protocol.stats if client.current_socket else None
    finally:
        await client.close()
    assert done.status == "completed"
    assert stats is not None
    if fault.startswith("malformed"):
        assert stats.malformed == 5 and stats.binary_frames == 1
        assert len(log.of(ev.FrameRejected)) == 5
    else:
        assert sum(stats.unknown_types.values()) + stats.unknown_fields >= 6


async def test_odd_deltas_reassemble_the_exact_audio(simulator) -> None:
    from sessions.simulator import parse_fault

    sim = await simulator(
        behavior="echo", pace=float("inf"), faults=(parse_fault("odd_deltas@any"),)
    )
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        await log.next(ev.ResponseDone)
        stats = client.current_socket.protocol.stats if client.current_socket else None
    finally:
        await client.close()
    assert stats is not None and stats.odd_deltas > 0 and stats.empty_deltas > 0
    audio = reply_audio(log, log.of(ev.AudioDelta)[0].item_id)
    assert ncc(audio, voiced(1.0)) > 0.9


async def test_an_oversized_frame_closes_the_socket_cleanly() -> None:
    """A frame above the 32 MiB limit: the socket closes (1009), reported, no crash."""

    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.send('{"type":"session.created","session":{"expires_at":1}}')
        await ws.send('{"type":"x","pad":"' + "a" * (33 * 1024 * 1024) + '"}')
        await ws.wait_closed()

    async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        connection = await Connection.open(
            Endpoint.compatible(f"ws://127.0.0.1:{port}/v1"), ConnectionOptions()
        )
        assert "session.created" in str(await connection.recv())
        with pytest.raises(ConnectionClosedError) as caught:
            await connection.recv()
        await connection.close()
    assert caught.value.code == 1009
