"""Handshake: paths, keys, subprotocols, the beta header, and the Azure preview dialect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import llm
from livekit.plugins import openai as lk_openai
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import SchemaGuard, SimulatorFactory
from tests.realtime_schema import TABLES
from tests.simclient import (
    RATE,
    ncc,
    open_ws,
    recv,
    recv_until,
    send,
    send_audio,
    utterance,
    voiced,
)

PREVIEW = "/realtime?api-version=2024-10-01-preview&deployment=gpt-4o-realtime-preview"


async def refusal(url: str, path: str = "/realtime?model=gpt-realtime", **options: Any) -> Any:
    with pytest.raises(InvalidStatus) as caught:
        await open_ws(url, path, **options)
    return caught.value.response


async def test_a_wrong_key_gets_http_401_with_an_openai_error_body(
    simulator: SimulatorFactory,
) -> None:
    sim = await simulator(api_key="sk-right-key-123")
    response = await refusal(sim.url, key="sk-wrong-key-456")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert body["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-key-456" not in body["error"]["message"]  # masked, as OpenAI does
    missing = await refusal(sim.url, key=None)
    assert missing.status_code == 401
    assert "didn't provide an API key" in json.loads(missing.body)["error"]["message"]
    ws = await open_ws(sim.url, headers={"api-key": "sk-right-key-123"}, key=None)
    assert (await recv(ws))["type"] == "session.created"
    assert sim.stats.rejected_handshakes[401] == 2


async def test_paths_and_parameters(simulator: SimulatorFactory) -> None:
    sim = await simulator()
    assert (await refusal(sim.url, "/chat?model=gpt-realtime")).status_code == 404
    assert (await refusal(sim.url, "/realtime")).status_code == 400  # no model
    root = sim.url.removesuffix("/v1")
    for url, path in [
        (sim.url, "/realtime?call_id=rtc_123"),
        (sim.url, "/realtime?intent=transcription"),
        (root, "/openai/v1/realtime?model=my-deployment"),
    ]:
        ws = await open_ws(url, path, key=None, headers={"api-key": "azure-key"})
        created = await recv(ws)
        assert created["session"]["type"] == "realtime"
        await ws.close()


async def test_the_realtime_subprotocol_is_selected_and_can_carry_the_key(
    simulator: SimulatorFactory,
) -> None:
    sim = await simulator(api_key="ek_browser")
    ws = await open_ws(
        sim.url, key=None, subprotocols=["realtime", "openai-insecure-api-key.ek_browser"]
    )
    assert ws.subprotocol == "realtime"
    assert (await recv(ws))["type"] == "session.created"
    plain = await open_ws(sim.url, key="ek_browser")
    assert plain.subprotocol is None


async def test_the_beta_header_on_a_ga_path_is_refused_with_close_4000(
    simulator: SimulatorFactory,
) -> None:
    sim = await simulator()
    ws = await open_ws(sim.url, headers={"OpenAI-Beta": "realtime=v1"})
    error = await recv(ws)
    assert error["type"] == "error"
    assert error["error"]["code"] == "beta_api_shape_disabled"
    with pytest.raises(ConnectionClosed):
        await recv(ws)
    assert ws.close_code == 4000


async def test_azure_preview_path_speaks_the_beta_dialect(
    simulator: SimulatorFactory, realtime_schema: SchemaGuard
) -> None:
    sim = await simulator(pace=float("inf"))
    root = sim.url.removesuffix("/v1")
    ws = await open_ws(root, "/openai" + PREVIEW, key=None, headers={"api-key": "k"})
    created = await recv(ws)
    assert "type" not in created["session"] and created["session"]["modalities"] == [
        "audio",
        "text",
    ]
    assert created["session"]["input_audio_format"] == "pcm16"
    assert (await recv(ws))["type"] == "conversation.created"
    await send(
        ws,
        "session.update",
        session={
            "modalities": ["text", "audio"],
            "voice": "alloy",
            "input_audio_transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
            "temperature": 0.7,
        },
    )
    updated, _ = await recv_until(ws, "session.updated")
    assert updated["session"]["turn_detection"]["silence_duration_ms"] == 300
    await send_audio(ws, utterance())
    done, seen = await recv_until(ws, "response.done")
    kinds = {e["type"] for e in seen}
    assert {
        "response.audio.delta",
        "response.audio_transcript.delta",
        "conversation.item.created",
    } <= kinds
    assert not kinds & {
        "conversation.item.added",
        "conversation.item.done",
        "response.output_audio.delta",
    }
    assert kinds <= set(TABLES["beta"])
    assert done["response"]["modalities"] == ["audio", "text"]
    assert done["response"]["output"][0]["content"][0]["type"] == "audio"
    await send(
        ws,
        "conversation.item.create",
        item={"type": "message", "role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    )
    created_item, _ = await recv_until(ws, "conversation.item.created")
    assert created_item["item"]["content"][0]["type"] == "text"
    assert realtime_schema.seen > 20  # all of it validated against the beta models


async def test_livekit_plugin_in_azure_preview_mode_talks_beta_with_the_simulator(
    simulator: SimulatorFactory,
) -> None:
    sim = await simulator(pace=float("inf"))
    model = lk_openai.realtime.RealtimeModel(
        azure_deployment="gpt-4o-realtime-preview",
        api_version="2024-10-01-preview",
        api_key="k",
        base_url=sim.url.removesuffix("/v1") + "/openai",
        input_audio_transcription=None,
    )
    session = model.session()
    generations: asyncio.Queue[llm.GenerationCreatedEvent] = asyncio.Queue()
    session.on("generation_created", generations.put_nowait)
    try:
        speech = voiced(1.0)
        samples = utterance()
        step = RATE // 100
        for i in range(0, len(samples), step):
            chunk = samples[i : i + step]
            session.push_audio(rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk)))
        generation = await asyncio.wait_for(generations.get(), 20)
        audio: list[bytes] = []

        async def read() -> None:
            async for message in generation.message_stream:
                async for frame in message.audio_stream:
                    audio.append(bytes(frame.data))

        await asyncio.wait_for(read(), 20)
        reply = np.frombuffer(b"".join(audio), dtype=np.int16)
        assert ncc(reply, speech) > 0.9
        assert not sim.stats.errors_sent
    finally:
        await session.aclose()
        await model.aclose()
