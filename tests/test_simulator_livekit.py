"""LiveKit's own OpenAI realtime plugin holds a conversation with the simulator (no room)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import llm
from livekit.plugins import openai as lk_openai

from tests.conftest import SimulatorFactory
from tests.simclient import RATE, ncc, silence, voiced


def frames(samples: np.ndarray, ms: int = 10) -> list[rtc.AudioFrame]:
    step = RATE * ms // 1000
    return [
        rtc.AudioFrame(
            data=samples[i : i + step].tobytes(),
            sample_rate=RATE,
            num_channels=1,
            samples_per_channel=len(samples[i : i + step]),
        )
        for i in range(0, len(samples), step)
    ]


async def collect(generation: llm.GenerationCreatedEvent) -> tuple[np.ndarray, str]:
    audio: list[bytes] = []
    text: list[str] = []
    async for message in generation.message_stream:

        async def read_audio(stream: Any = message.audio_stream) -> None:
            async for frame in stream:
                audio.append(bytes(frame.data))

        async def read_text(stream: Any = message.text_stream) -> None:
            async for delta in stream:
                text.append(str(delta))

        await asyncio.gather(read_audio(), read_text())
    return np.frombuffer(b"".join(audio), dtype=np.int16), "".join(text)


async def test_livekit_realtime_plugin_hears_the_caller_and_plays_the_echo(
    simulator: SimulatorFactory,
) -> None:
    sim = await simulator(behavior="echo", pace=float("inf"))
    model = lk_openai.realtime.RealtimeModel(base_url=sim.url, api_key="test")
    session = model.session()
    generations: asyncio.Queue[llm.GenerationCreatedEvent] = asyncio.Queue()
    transcripts: list[llm.InputTranscriptionCompleted] = []
    errors: list[llm.RealtimeModelError] = []
    session.on("generation_created", generations.put_nowait)
    session.on("input_audio_transcription_completed", transcripts.append)
    session.on("error", errors.append)
    try:
        speech = voiced(1.0)
        # LiveKit's defaults: semantic_vad (medium eagerness: 500 ms of silence ends the turn)
        # and input transcription; frames are pushed faster than real time.
        for frame in frames(np.concatenate([silence(0.5), speech, silence(1.0)])):
            session.push_audio(frame)
        generation = await asyncio.wait_for(generations.get(), 20)
        assert not generation.user_initiated
        reply, text = await asyncio.wait_for(collect(generation), 20)
        assert abs(len(reply) / 24 - 1000) <= 5
        assert ncc(reply, speech) > 0.9
        assert text == "alpha bravo charlie"
        final = [t for t in transcripts if t.is_final]
        assert final and final[0].transcript == "alpha bravo charlie"

        # generate_reply: the plugin matches response.created to its request by metadata.
        reply_future = session.generate_reply()
        generation = await asyncio.wait_for(reply_future, 20)
        assert generation.user_initiated
        reply, _ = await asyncio.wait_for(collect(generation), 20)
        assert ncc(reply, speech) > 0.9
        assert not errors, errors
        assert not sim.stats.errors_sent, sim.stats.errors_sent
        assert sim.stats.responses_done["completed"] == 2
    finally:
        await session.aclose()
        await model.aclose()
