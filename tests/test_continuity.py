"""A conversation that outlives its sockets, over real sockets: the supervisor pumps the
continuity core (``sessions.continuity``) against the in-process simulator.

The decisions and their timing (rollover windows, backoff, stall and keepalive deadlines,
expiry, outage limits) are tested on a fake clock in ``tests/test_continuity_core.py``; here
each path is shown once end to end, with its timers made small through the options so that
nothing waits for seconds. Caller audio is pushed faster than real time; every wait is on an
event (with a timeout only as a safety net).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sessions import events as ev
from sessions.connection import ConnectionOptions
from sessions.errors import SessionFailed
from sessions.simulator import parse_fault
from sessions.turns import EndAudio
from tests.sessionkit import EventLog, supervisor
from tests.simclient import silence, utterance


def faults(*specs: str) -> tuple:
    return tuple(parse_fault(s) for s in specs)


def journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def created_items(lines: list[dict], conn: int) -> list[dict]:
    return [
        x["frame"]["item"]
        for x in lines
        if x["dir"] == "in"
        and x["conn"] == conn
        and x["frame"].get("type") == "conversation.item.create"
    ]


def session_updates(lines: list[dict]) -> dict[int, str]:
    return {
        x["conn"]: x["frame"]["session"]["instructions"]
        for x in lines
        if x["dir"] == "in" and x["frame"].get("type") == "session.update"
    }


async def test_a_drop_mid_reply_reconnects_replays_and_resumes(simulator, tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    sim = await simulator(
        behavior="echo", pace=8.0, journal=path, faults=faults("drop@agent_speaking")
    )
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        await log.until(lambda: client.stats.reconnects["dropped"] == 1)
        done = await log.next(ev.ResponseDone)  # the reply to the cut turn, on socket 2
    finally:
        await client.close()
    assert done.status == "completed"
    lines = journal(path)
    updates = session_updates(lines)
    assert updates[1] == updates[2] == "Test instructions."
    replayed = created_items(lines, conn=2)
    assert [(i["type"], i.get("role")) for i in replayed][:1] == [("message", "user")]
    assert replayed[0]["content"][0]["type"] == "input_audio"  # no transcript: its audio
    assert client.stats.lost_samples == 0
    assert client.stats.reconnect_ms and client.stats.reconnect_ms[0] < 5_000
    # The bridge is told the cut item will get no more audio (so its playout can finish).
    cut_item = log.of(ev.AudioDelta)[0].item_id
    assert EndAudio(cut_item) in log.turn_actions


async def test_caller_audio_during_an_outage_is_not_lost(simulator) -> None:
    sim = await simulator(
        behavior="echo", pace=float("inf"), faults=faults("tcp_close@caller_speaking")
    )
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        # The socket dies as the caller starts; the whole utterance reaches socket 2.
        client.append_audio(utterance(lead=0.3, speech=1.0, tail=0.6))
        done = await log.next(ev.ResponseDone)
    finally:
        await client.close()
    assert client.stats.reconnects["dropped"] == 1
    assert done.status == "completed"
    assert client.stats.resent_samples > 0 and client.stats.lost_samples == 0


async def test_uncommitted_audio_beyond_the_resend_bound_is_counted_lost(simulator) -> None:
    sim = await simulator(
        behavior="echo", pace=float("inf"), faults=faults("tcp_close@caller_speaking")
    )
    log = EventLog()
    client = supervisor(sim.url, log, resend_max_s=0.5)
    await client.start()
    try:
        # All 1.9 s are taken before the drop is seen, none of it committed: the new socket
        # gets the last 0.5 s, and the rest is said to be lost, not passed over in silence.
        client.append_audio(utterance(lead=0.3, speech=1.0, tail=0.6))
        taken = client.samples_appended
        await log.until(lambda: client.stats.reconnects["dropped"] == 1)
        await log.until(lambda: client.stats.resent_samples > 0)
    finally:
        await client.close()
    assert client.stats.resent_samples == 12_000
    assert client.stats.lost_samples == taken - 12_000


async def test_a_stalled_server_is_detected_and_replaced(simulator) -> None:
    sim = await simulator(behavior="echo", pace=8.0, faults=faults("stall@agent_speaking"))
    log = EventLog()
    client = supervisor(sim.url, log, stall_timeout_s=0.2)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        await log.until(lambda: client.stats.reconnects["stalled"] == 1)
        done = await log.next(ev.ResponseDone)
    finally:
        await client.close()
    assert done.status == "completed"


async def test_an_unanswered_ping_is_a_stall(simulator) -> None:
    """The keepalive is the core's: a stalled server holds its pongs back."""
    sim = await simulator(behavior="echo", pace=8.0, faults=faults("stall@idle"))
    log = EventLog()
    client = supervisor(
        sim.url, log, options=ConnectionOptions(ping_interval=0.05, ping_timeout=0.25)
    )
    await client.start()
    try:
        await log.until(lambda: client.stats.reconnects["stalled"] == 1)
        client.append_audio(utterance(lead=0.2, speech=0.8, tail=0.5))  # the new socket hears
        done = await log.next(ev.ResponseDone)
    finally:
        await client.close()
    assert done.status == "completed"


async def test_expiry_after_a_reply_reconnects_with_the_conversation(
    simulator, tmp_path: Path
) -> None:
    path = tmp_path / "journal.jsonl"
    sim = await simulator(
        behavior="echo", pace=float("inf"), journal=path, faults=faults("expire@after_reply")
    )
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        await log.next(ev.ResponseDone)
        client.append_audio(silence(0.1))  # idle after the reply: the session expires
        await log.until(lambda: client.stats.reconnects["expired"] == 1)
        client.append_audio(utterance(lead=0.2, speech=0.8, tail=0.5))  # the next question
        second = await log.next(ev.ResponseDone, after=1)
    finally:
        await client.close()
    assert second.status == "completed"
    expired = [e for e in log.of(ev.ErrorReceived) if e.error.code == "session_expired"]
    assert len(expired) == 1
    lines = journal(path)
    replayed = created_items(lines, conn=2)
    assert [i.get("role") for i in replayed] == ["user", "assistant"]
    assert session_updates(lines)[2] == "Test instructions."


async def test_rollover_before_expiry_switches_between_turns_losing_nothing(
    simulator, tmp_path: Path
) -> None:
    path = tmp_path / "journal.jsonl"
    sim = await simulator(behavior="echo", pace=float("inf"), journal=path)
    log = EventLog()
    # Sessions of 0.6 s: a boundary is looked for from 0.3 s on (the margin is half of it).
    client = supervisor(sim.url, log, tail_ms=300, max_session_s=0.6)
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=0.8, tail=0.5))
        await log.next(ev.ResponseDone)
        # The caller's (silent) audio keeps flowing, at its real pace, until the switch.
        while client.stats.rollovers == 0:
            client.append_audio(silence(0.02))
            await asyncio.sleep(0.02)
        client.append_audio(utterance(lead=0.2, speech=0.8, tail=0.5))
        second = await log.next(ev.ResponseDone, after=1)
    finally:
        await client.close()
    assert second.status == "completed"
    assert not client.stats.reconnects  # a rollover, not a reconnect
    assert not [e for e in log.of(ev.ErrorReceived) if e.error.code == "session_expired"]
    assert client.stats.lost_samples == 0
    assert len(client.stats.rollover_gaps_ms) == client.stats.rollovers
    lines = journal(path)
    sent: dict[int, int] = {}
    for x in lines:
        if x["dir"] == "in" and x["frame"].get("type") == "input_audio_buffer.append":
            sent[x["conn"]] = sent.get(x["conn"], 0) + x["frame"]["bytes"] // 2
    # Every sample reached a socket; each successor also got its predecessor's tail again
    # (the old socket's last partial chunk, < 20 ms, goes only to the new one).
    conns = sorted(sent)
    assert len(conns) == client.stats.rollovers + 1
    assert sum(sent.values()) >= client.samples_appended + client.stats.rollovers * (300 * 24 - 480)
    assert [i.get("role") for i in created_items(lines, conn=2)] == ["user", "assistant"]


async def test_a_fatal_error_ends_the_conversation_at_once(simulator) -> None:
    sim = await simulator(faults=faults("error:invalid_api_key@idle"))
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    with pytest.raises(SessionFailed) as caught:
        await asyncio.wait_for(client.run(), timeout=10)
    await client.close()
    assert caught.value.fatal
    assert "invalid_api_key" in str(caught.value)
    assert not client.stats.reconnects and client.stats.failed_attempts == 0


async def test_an_outage_beyond_the_limit_ends_the_conversation(simulator) -> None:
    sim = await simulator()
    log = EventLog()
    client = supervisor(sim.url, log, max_outage_s=0.1, reconnect_base_s=0.02)
    await client.start()
    await sim.close()  # the server is gone for good
    with pytest.raises(SessionFailed) as caught:
        await asyncio.wait_for(client.run(), timeout=10)
    await client.close()
    assert not caught.value.fatal
    assert "unreachable" in str(caught.value)
    assert client.stats.failed_attempts >= 1


async def test_a_key_refused_on_reconnect_is_fatal(simulator) -> None:
    sim = await simulator()
    port = sim.port
    log = EventLog()
    client = supervisor(sim.url, log)
    await client.start()
    await sim.close()
    await simulator(api_key="rotated-key", port=port)  # back, but our key was revoked
    with pytest.raises(SessionFailed) as caught:
        await asyncio.wait_for(client.run(), timeout=10)
    await client.close()
    assert caught.value.fatal and "API key was rejected" in str(caught.value)
