"""Each fault kind at the phases where it makes sense, seen from a plain WebSocket client."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sessions.errors import ConfigError
from sessions.simulator import FaultKind, FaultSpec, Phase, Simulator, SimulatorConfig, parse_fault
from tests.conftest import SimulatorFactory
from tests.realtime_schema import check_event, check_journal
from tests.simclient import (
    configure,
    open_ws,
    pcm,
    recv,
    recv_until,
    send,
    send_audio,
    utterance,
    vad,
    voiced,
)

PHASES = ["any", "idle", "caller_speaking", "agent_speaking"]
LAST_EVENT = {
    "any": "session.created",
    "idle": "session.updated",
    "caller_speaking": "input_audio_buffer.speech_started",
    "agent_speaking": "response.output_audio.delta",
}


async def reach(ws: ClientConnection, phase: str) -> None:
    """Drive the conversation to ``phase``: returns once its event has arrived."""
    if phase == "any":
        await recv(ws)
        return
    await configure(ws, audio=vad())
    if phase == "caller_speaking":
        await send_audio(ws, voiced(0.2))
        await recv_until(ws, LAST_EVENT[phase])
    elif phase == "agent_speaking":
        await send_audio(ws, utterance())
        await recv_until(ws, LAST_EVENT[phase])


async def start(
    simulator: SimulatorFactory, spec: str, **config: Any
) -> tuple[Simulator, ClientConnection]:
    sim = await simulator(faults=(parse_fault(spec),), **config)
    return sim, await open_ws(sim.url)


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            await recv(ws)
    return ws.close_code, ws.close_reason


@pytest.mark.parametrize("phase", PHASES)
async def test_drop_closes_with_1011_right_after_the_phase(
    simulator: SimulatorFactory, phase: str
) -> None:
    sim, ws = await start(simulator, f"drop@{phase}")
    await reach(ws, phase)
    assert await closed(ws) == (1011, "simulated drop")
    assert sim.stats.faults_fired[f"drop@{phase}"] == 1


@pytest.mark.parametrize("phase", PHASES)
async def test_tcp_close_aborts_without_a_close_frame(
    simulator: SimulatorFactory, phase: str
) -> None:
    _, ws = await start(simulator, f"tcp_close@{phase}")
    with pytest.raises(ConnectionClosed):
        await reach(ws, phase)  # the abort may overtake the phase's own event
        while True:
            await recv(ws)
    assert ws.close_code == 1006


@pytest.mark.parametrize("phase", PHASES)
async def test_error_server_error_arrives_next_and_the_session_goes_on(
    simulator: SimulatorFactory, phase: str
) -> None:
    _, ws = await start(simulator, f"error:server_error@{phase}")
    await reach(ws, phase)
    error = await recv(ws)
    assert error["type"] == "error"
    assert (error["error"]["type"], error["error"]["code"]) == ("server_error", "server_error")
    await send(ws, "session.update", session={"type": "realtime"})
    await recv_until(ws, "session.updated")


@pytest.mark.parametrize("phase", PHASES)
async def test_expire_sends_session_expired_then_closes_with_1001(
    simulator: SimulatorFactory, phase: str
) -> None:
    _, ws = await start(simulator, f"expire@{phase}")
    await reach(ws, phase)
    error, _ = await recv_until(ws, "error")
    assert error["error"]["code"] == "session_expired"
    assert await closed(ws) == (1001, "Your session hit the maximum duration of 60 minutes.")


async def test_fatal_error_at_connect_comes_before_session_created_and_closes(
    simulator: SimulatorFactory,
) -> None:
    _, ws = await start(simulator, "error:invalid_api_key@connect")
    error = await recv(ws)
    assert error["error"]["code"] == "invalid_api_key"
    assert await closed(ws) == (1008, "invalid_api_key")


async def test_drop_at_connect_closes_before_session_created(simulator: SimulatorFactory) -> None:
    _, ws = await start(simulator, "drop@connect")
    assert await closed(ws) == (1011, "simulated drop")


async def test_tcp_close_at_connect_fails_the_handshake(simulator: SimulatorFactory) -> None:
    sim = await simulator(faults=(parse_fault("tcp_close@connect"),))
    with pytest.raises((OSError, EOFError, InvalidStatus, Exception)) as caught:
        await open_ws(sim.url)
    assert not isinstance(caught.value, InvalidStatus)
    ws = await open_ws(sim.url)  # count 1: the next handshake succeeds
    assert (await recv(ws))["type"] == "session.created"


async def test_stall_at_connect_holds_the_handshake(simulator: SimulatorFactory) -> None:
    sim = await simulator(faults=(parse_fault("stall@connect"),))
    with pytest.raises(TimeoutError):
        await open_ws(sim.url, open_timeout=0.5)
    assert sim.stats.faults_fired["stall@connect"] == 1


async def test_reject_refuses_handshakes_as_many_times_as_its_count(
    simulator: SimulatorFactory,
) -> None:
    sim = await simulator(faults=(parse_fault("reject:503*2"), parse_fault("reject:403@connect")))
    statuses = []
    for _ in range(3):
        with pytest.raises(InvalidStatus) as caught:
            await open_ws(sim.url)
        statuses.append(caught.value.response.status_code)
    assert statuses == [503, 503, 403]
    ws = await open_ws(sim.url)
    assert (await recv(ws))["type"] == "session.created"
    assert sim.stats.rejected_handshakes == {503: 2, 403: 1}


async def test_counts_span_connections_and_inf_means_always(simulator: SimulatorFactory) -> None:
    sim = await simulator(
        faults=(parse_fault("drop@any*2"), parse_fault("error:rate_limit_exceeded@idle*inf"))
    )
    for _ in range(2):
        ws = await open_ws(sim.url)
        await recv(ws)
        assert (await closed(ws))[0] == 1011
    for _ in range(2):
        ws = await open_ws(sim.url)
        await configure(ws)
        error = await recv(ws)
        assert error["error"]["code"] == "rate_limit_exceeded"
        await ws.close()
    assert sim.stats.faults_fired == {"drop@any*2": 2, "error:rate_limit_exceeded@idle*inf": 2}


async def test_stall_silences_everything_including_pongs_then_resumes(
    simulator: SimulatorFactory,
) -> None:
    _, ws = await start(simulator, "stall:1.5@agent_speaking", pace=4.0)
    await reach(ws, "agent_speaking")
    with pytest.raises(TimeoutError):
        await recv(ws, timeout=0.3)  # the response is still going, but nothing is sent
    pong = await ws.ping()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(pong), 0.2)
    await send(ws, "response.cancel")  # read and ignored while stalled
    await asyncio.wait_for(pong, 10)  # answered once the stall ends
    done, seen = await recv_until(ws, "response.done")
    assert done["response"]["status"] == "completed"
    assert "error" not in {e["type"] for e in seen}


async def test_delay_holds_every_later_frame(simulator: SimulatorFactory) -> None:
    _, ws = await start(simulator, "delay:300@idle")
    await reach(ws, "idle")
    sent = time.monotonic()
    await send(ws, "session.update", session={"type": "realtime"})
    await recv_until(ws, "session.updated")
    assert time.monotonic() - sent >= 0.29


async def test_malformed_frames_arrive_then_the_session_continues(
    simulator: SimulatorFactory, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    sim = Simulator(SimulatorConfig(faults=(parse_fault("malformed@idle"),)), journal=journal)
    async with sim:
        ws = await open_ws(sim.url)
        await reach(ws, "idle")
        frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(5)]
        assert isinstance(frames[1], bytes)
        texts = [f for f in frames if isinstance(f, str)]
        parsed = []
        for text in texts:
            try:
                parsed.append(json.loads(text))
            except ValueError:
                parsed.append(None)
        assert parsed.count(None) == 2  # invalid JSON and a truncated frame
        for event in parsed:
            if event is not None:  # missing fields / wrong types: the SDK models refuse them
                assert check_event("ga", event)
        await send(ws, "session.update", session={"type": "realtime"})
        await recv_until(ws, "session.updated")
        await ws.close()
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sum(line.get("fault") == "malformed" for line in lines) == 5
    assert {"fault": "malformed@idle"} in [line.get("note") for line in lines]
    checked, problems = check_journal(journal)
    assert checked >= 3 and problems == []


async def test_unknown_events_and_fields_are_interleaved(simulator: SimulatorFactory) -> None:
    _, ws = await start(simulator, "unknown:3@any")
    assert (await recv(ws))["type"] == "session.created"
    first = await recv(ws)
    assert first["type"] not in {"session.created", "session.updated"} and check_event("ga", first)
    await send(ws, "session.update", session={"type": "realtime"})
    decorated = await recv(ws)
    assert decorated["type"] == "session.updated" and "x_future_field" in decorated
    await send(ws, "session.update", session={"type": "realtime"})
    assert check_event("ga", await recv(ws))  # another unknown type
    plain = await recv(ws)
    assert plain["type"] == "session.updated" and "x_future_field" not in plain


async def test_odd_deltas_split_samples_but_keep_the_audio(simulator: SimulatorFactory) -> None:
    _, ws = await start(simulator, "odd_deltas@any", pace=float("inf"))
    await configure(ws, audio=vad())
    speech = voiced(1.0)
    await send_audio(
        ws, np.concatenate([np.zeros(12000, np.int16), speech, np.zeros(24000, np.int16)])
    )
    _, seen = await recv_until(ws, "response.done")
    deltas = [e["delta"] for e in seen if e["type"] == "response.output_audio.delta"]
    sizes = [len(d) * 3 // 4 - d[-2:].count("=") if d else 0 for d in deltas]
    assert any(size % 2 for size in sizes) and 0 in sizes
    assert any(
        e["type"].startswith("response.output_audio.") is False and check_event("ga", e)
        for e in seen
    )
    assert pcm(deltas).tobytes() == speech.tobytes()


async def test_faults_are_logged_and_counted(simulator: SimulatorFactory) -> None:
    with structlog.testing.capture_logs() as logs:
        sim, ws = await start(simulator, "drop@any")
        await reach(ws, "any")
        await closed(ws)
    fired = [log for log in logs if log["event"] == "sim.fault.fired"]
    assert fired and fired[0]["fault"] == "drop@any"
    assert sim.stats.snapshot()["faults_fired"] == {"drop@any": 1}


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("drop", FaultSpec(FaultKind.DROP)),
        ("stall:2.5@caller_speaking", FaultSpec(FaultKind.STALL, "2.5", Phase.CALLER_SPEAKING)),
        ("error:rate_limit_exceeded*3", FaultSpec(FaultKind.ERROR, "rate_limit_exceeded", count=3)),
        ("reject:401*inf", FaultSpec(FaultKind.REJECT, "401", Phase.CONNECT, None)),
        ("malformed:2@idle*0", FaultSpec(FaultKind.MALFORMED, "2", Phase.IDLE, None)),
        ("odd_deltas@agent_speaking", FaultSpec(FaultKind.ODD_DELTAS, phase=Phase.AGENT_SPEAKING)),
    ],
)
def test_fault_specs_parse(text: str, spec: FaultSpec) -> None:
    assert parse_fault(text) == spec
    assert parse_fault(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("explode", "unknown kind"),
        ("drop@later", "unknown phase"),
        ("drop:3", "takes no argument"),
        ("delay", "needs an argument"),
        ("delay:soon", "milliseconds"),
        ("stall:-1", "seconds"),
        ("reject:200", "from 400 to 599"),
        ("reject:401@idle", "connect"),
        ("malformed:0", "positive number of frames"),
        ("error:Bad Code", "code like"),
        ("drop*-1", "grammar"),
        ("drop*two", "count"),
    ],
)
def test_bad_fault_specs_are_config_errors(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_fault(text)
