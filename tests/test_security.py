"""Secrets never leave the process: not in logs (at debug level, websockets included), not
in exceptions (handshake errors included), not in metrics, not in the room."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest

from bridge.call.profiles import ProfileSet
from bridge.local.trial import run_trial
from bridge.local.wavfile import demo_recording, read_wav
from bridge.logs import configure_logging
from bridge.metrics import BridgeMetrics
from bridge.pod.settings import realtime_endpoint
from sessions.connection import Connection
from sessions.errors import HandshakeRejected
from sessions.simulator import Simulator, SimulatorConfig

KEY = "sk-proj-SECRETsecret0123456789abcdefXYZ"
FRAGMENTS = (KEY, KEY[8:24], "SECRETsecret")


@pytest.fixture
def captured() -> io.StringIO:
    """Every log record of the process (structlog and stdlib), at debug level, as JSON."""
    stream = io.StringIO()
    configure_logging(json=True, level="debug", stream=stream)
    logging.getLogger("websockets").setLevel(logging.DEBUG)
    yield stream
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()


def leaks(text: str) -> list[str]:
    return [fragment for fragment in FRAGMENTS if fragment in text]


async def test_a_whole_call_leaks_the_key_nowhere(captured: io.StringIO) -> None:
    demo = demo_recording()
    wav = read_wav(demo)
    short = type(wav)(wav.samples[: 6 * wav.rate], wav.rate, wav.channels)
    registry = CollectorRegistry()
    async with Simulator(SimulatorConfig(behavior="echo"), host="127.0.0.1", port=0) as sim:
        endpoint = realtime_endpoint(
            "gpt-realtime", {"OPENAI_API_KEY": KEY}, url=sim.url
        )  # registers the key as a secret, as the bridge does when it reads the environment
        assert dict(endpoint.headers)["Authorization"] == f"Bearer {KEY}"
        result = await run_trial(
            short, ProfileSet.builtin().default, endpoint, metrics=BridgeMetrics(registry)
        )
    room = result.participant
    published = json.dumps(
        {
            "attributes": room.attribute_history,
            "streams": [
                (s.attributes, s.trailer, s.chunks, s.sender_identity) for s in room.streams
            ],
            "transcriptions": [[seg.text for seg in t.segments] for t in room.transcriptions],
        },
        default=str,
    )
    logs = captured.getvalue()
    # websockets logged the request headers at debug level: the key was there, and scrubbed.
    assert "Authorization: Bearer [redacted]" in logs
    assert leaks(logs) == []
    assert leaks(published) == []
    assert leaks(json.dumps(result.summary(), default=str)) == []
    assert leaks(generate_latest(registry).decode()) == []
    assert leaks(repr(endpoint)) == []


async def test_a_refused_handshake_leaks_the_key_nowhere(captured: io.StringIO) -> None:
    async with Simulator(SimulatorConfig(api_key="the-right-one"), host="127.0.0.1", port=0) as sim:
        endpoint = realtime_endpoint("gpt-realtime", {"OPENAI_API_KEY": KEY}, url=sim.url)
        with pytest.raises(HandshakeRejected) as caught:
            await Connection.open(endpoint)
    error = caught.value
    assert error.status == 401
    text = " ".join([str(error), repr(error), repr(error.args), error.detail])
    assert "API key" in str(error)
    assert leaks(text) == []
    assert "Authorization: Bearer [redacted]" in captured.getvalue()
    assert leaks(captured.getvalue()) == []


def test_the_simulator_binds_loopback_unless_told_otherwise() -> None:
    import inspect

    assert inspect.signature(Simulator).parameters["host"].default == "127.0.0.1"
