"""The simulator's protocol behaviour seen from a plain WebSocket client."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import SimulatorFactory
from tests.simclient import (
    configure,
    open_ws,
    pcm,
    recv,
    recv_until,
    send,
    send_audio,
    silence,
    types,
    utterance,
    vad,
    voiced,
)

USER_TEXT = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


async def connected(simulator: SimulatorFactory, **config: Any) -> ClientConnection:
    sim = await simulator(**config)
    return await open_ws(sim.url)


async def error_for(ws: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
    await send(ws, kind, event_id="evt_client_1", **fields)
    error, _ = await recv_until(ws, "error")
    assert error["error"]["event_id"] == "evt_client_1"
    return dict(error["error"])


# -- session.update -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "code", "message", "param"),
    [
        (
            {},
            "missing_required_parameter",
            "Missing required parameter: 'session.type'.",
            "session.type",
        ),
        (
            {"type": "realtime", "temperature": 0.8},
            "unknown_parameter",
            "Unknown parameter: 'session.temperature'.",
            "session.temperature",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "x": 1}}},
            },
            "unknown_parameter",
            "Unknown parameter: 'session.audio.input.turn_detection.x'.",
            "session.audio.input.turn_detection.x",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "x"}}},
            },
            "invalid_value",
            "Invalid value: 'x'. Supported values are: 'low', 'medium', 'high', and 'auto'.",
            "session.audio.input.turn_detection.eagerness",
        ),
        (
            {"type": "realtime", "output_modalities": ["audio", "text"]},
            "invalid_value",
            "Invalid modalities: ['audio', 'text']. Supported combinations are: ['text'] and"
            " ['audio'].",
            "session.output_modalities",
        ),
        (
            {"type": "realtime", "instructions": 7},
            "invalid_type",
            "Invalid type for 'session.instructions': expected a string, but got an integer"
            " instead.",
            "session.instructions",
        ),
        (
            {"type": "realtime", "audio": {"output": {"voice": "bob"}}},
            "invalid_value",
            "Invalid value: 'bob'. Supported values are: 'alloy', 'ash', 'ballad', 'coral',"
            " 'echo', 'sage', 'shimmer', 'verse', 'marin', and 'cedar'.",
            "session.audio.output.voice",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
            "invalid_value",
            "Invalid value: 16000. Supported values are: 24000.",
            "session.audio.input.format.rate",
        ),
    ],
)
async def test_session_update_is_refused_whole_with_the_real_error(
    simulator: SimulatorFactory, session: dict[str, Any], code: str, message: str, param: str
) -> None:
    ws = await connected(simulator)
    await recv(ws)
    error = await error_for(ws, "session.update", session={"instructions": "changed", **session})
    assert (error["code"], error["message"], error["param"]) == (code, message, param)
    await send(ws, "session.update", session={"type": "realtime"})
    updated, _ = await recv_until(ws, "session.updated")
    assert updated["session"]["instructions"] != "changed"  # nothing of it was applied
    assert "event_id" not in updated or updated["event_id"] != "evt_client_1"


async def test_session_update_merges_and_answers_with_the_full_session(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator)
    created = await recv(ws)
    default = created["session"]
    assert default["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200
    await send(
        ws,
        "session.update",
        session={
            "type": "realtime",
            "instructions": "Be brief.",
            "audio": {
                "input": {"turn_detection": {"type": "semantic_vad"}},
                "output": {"voice": "marin"},
            },
        },
    )
    updated, _ = await recv_until(ws, "session.updated")
    session = updated["session"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"] == {**default["audio"]["output"], "voice": "marin"}
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    }
    assert session["expires_at"] == default["expires_at"]


async def test_voice_cannot_change_once_the_session_has_produced_audio(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator, behavior="tone", pace=float("inf"))
    await configure(ws, audio={"output": {"voice": "ash"}})
    await send(
        ws, "session.update", session={"type": "realtime", "audio": {"output": {"voice": "sage"}}}
    )
    await recv_until(ws, "session.updated")  # before any audio: allowed
    await send(ws, "response.create")
    await recv_until(ws, "response.done")
    error = await error_for(
        ws, "session.update", session={"type": "realtime", "audio": {"output": {"voice": "coral"}}}
    )
    assert error["code"] == "cannot_update_voice"
    assert error["message"] == "Cannot update a conversation's voice if assistant audio is present."


# -- input audio buffer -----------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "shown"), [(0.0, "0.00"), (0.05, "50.00")])
async def test_commit_of_less_than_100_ms_is_refused(
    simulator: SimulatorFactory, seconds: float, shown: str
) -> None:
    ws = await connected(simulator)
    await configure(ws, audio={"input": {"turn_detection": None}})
    await send_audio(ws, voiced(seconds))
    error = await error_for(ws, "input_audio_buffer.commit")
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert error["message"] == (
        "Error committing input audio buffer: buffer too small. Expected at least 100ms of"
        f" audio, but buffer only has {shown}ms of audio."
    )


async def test_manual_turns_commit_odd_sized_appends_whole_and_create_no_response(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator, pace=float("inf"))
    await configure(ws, audio={"input": {"turn_detection": None}})
    data = voiced(0.3).tobytes()
    cuts = [0, 1, 4, 959, 2000, len(data)]  # odd sizes split samples across appends
    for start, end in zip(cuts, cuts[1:], strict=False):
        await send(
            ws, "input_audio_buffer.append", audio=base64.b64encode(data[start:end]).decode()
        )
    await send(ws, "input_audio_buffer.commit")
    committed, before = await recv_until(ws, "input_audio_buffer.committed")
    assert before == []  # no VAD events without turn detection
    added, _ = await recv_until(ws, "conversation.item.done")
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    await send(ws, "conversation.item.retrieve", item_id=committed["item_id"])
    retrieved, seen = await recv_until(ws, "conversation.item.retrieved")
    assert "response.created" not in types(seen)
    assert base64.b64decode(retrieved["item"]["content"][0]["audio"]) == data
    await send(ws, "input_audio_buffer.append", audio=base64.b64encode(data).decode())
    await send(ws, "input_audio_buffer.clear")
    await recv_until(ws, "input_audio_buffer.cleared")
    await send(ws, "response.create")
    done, _ = await recv_until(ws, "response.done")
    assert pcm_of_reply(done) is None  # (no audio bytes in response.done)


def pcm_of_reply(done: dict[str, Any]) -> Any:
    return done["response"]["output"][0]["content"][0].get("audio")


async def test_one_active_response_at_a_time_and_client_cancellation(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator, behavior="tone", pace=1.0)  # 1.5 s of tone in real time
    await configure(ws)
    await send(ws, "response.create")
    await send(ws, "response.create", event_id="evt_second")
    created, _ = await recv_until(ws, "response.created")
    error, _ = await recv_until(ws, "error")
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert error["error"]["event_id"] == "evt_second"
    assert error["error"]["message"] == (
        "Conversation already has an active response in progress:"
        f" {created['response']['id']}. Wait until the response is finished before creating a"
        " new one."
    )
    await send(ws, "response.cancel")
    done, seen = await recv_until(ws, "response.done")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["response"]["output"][0]["status"] == "incomplete"
    tail = [t for t in types(seen) if not t.endswith("delta")]
    assert tail[-4:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
    ] or tail[-5:-1] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    limits, _ = await recv_until(ws, "rate_limits.updated")
    assert limits["rate_limits"][0]["remaining"] < limits["rate_limits"][0]["limit"]
    await send(ws, "response.cancel", event_id="evt_again")
    error, _ = await recv_until(ws, "error")
    assert (error["error"]["code"], error["error"]["event_id"]) == (
        "response_cancel_not_active",
        "evt_again",
    )


async def test_response_metadata_and_overrides_are_echoed(simulator: SimulatorFactory) -> None:
    ws = await connected(simulator, behavior="tone", pace=float("inf"))
    await configure(ws)
    await send(
        ws,
        "response.create",
        response={
            "metadata": {"client_event_id": "abc"},
            "instructions": None,
            "audio": {"output": {"voice": "cedar"}},
        },
    )
    created, _ = await recv_until(ws, "response.created")
    assert created["response"]["metadata"] == {"client_event_id": "abc"}
    assert created["response"]["audio"]["output"]["voice"] == "cedar"
    await recv_until(ws, "response.done")
    error = await error_for(ws, "response.create", response={"conversation": "none"})
    assert error["code"] == "invalid_value" and error["param"] == "response.conversation"


# -- conversation items -----------------------------------------------------------------------


async def test_items_are_created_deleted_and_retrieved(simulator: SimulatorFactory) -> None:
    ws = await connected(simulator)
    await configure(ws)
    audio = base64.b64encode(voiced(0.2).tobytes()).decode()
    await send(ws, "conversation.item.create", item={**USER_TEXT, "id": "item_first"})
    first, _ = await recv_until(ws, "conversation.item.added")
    assert first["previous_item_id"] is None
    await recv_until(ws, "conversation.item.done")
    await send(
        ws,
        "conversation.item.create",
        previous_item_id="root",
        item={
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "s"}],
        },
    )
    root, _ = await recv_until(ws, "conversation.item.added")
    assert root["previous_item_id"] is None
    await send(
        ws,
        "conversation.item.create",
        previous_item_id="item_first",
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": audio, "transcript": "hello there"}],
        },
    )
    spoken, _ = await recv_until(ws, "conversation.item.added")
    assert spoken["previous_item_id"] == "item_first"
    assert spoken["item"]["content"] == [{"type": "input_audio", "transcript": "hello there"}]
    for item in (
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok"}],
        },
        {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "call_1"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
    ):
        await send(ws, "conversation.item.create", item=item)
        added, _ = await recv_until(ws, "conversation.item.added")
        assert added["item"]["type"] == item["type"]
    await send(ws, "conversation.item.retrieve", item_id=spoken["item"]["id"])
    retrieved, _ = await recv_until(ws, "conversation.item.retrieved")
    assert retrieved["item"]["content"][0]["audio"] == audio
    await send(ws, "conversation.item.delete", item_id="item_first")
    deleted, _ = await recv_until(ws, "conversation.item.deleted")
    assert deleted["item_id"] == "item_first"

    cases: list[tuple[str, dict[str, Any], str]] = [
        ("conversation.item.retrieve", {"item_id": "item_first"}, "item_retrieve_invalid_item_id"),
        ("conversation.item.delete", {"item_id": "item_nope"}, "item_delete_invalid_item_id"),
        (
            "conversation.item.truncate",
            {"item_id": "item_nope", "content_index": 0, "audio_end_ms": 0},
            "item_truncate_invalid_item_id",
        ),
        (
            "conversation.item.truncate",
            {"item_id": spoken["item"]["id"], "content_index": 0, "audio_end_ms": 0},
            "unsupported_content_type",
        ),
        (
            "conversation.item.create",
            {"item": USER_TEXT, "previous_item_id": "item_nope"},
            "item_create_invalid_previous_item_id",
        ),
        (
            "conversation.item.create",
            {"item": {**USER_TEXT, "id": root["item"]["id"]}},
            "item_create_duplicate_item_id",
        ),
        (
            "conversation.item.create",
            {
                "item": {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_audio"}],
                }
            },
            "invalid_value",
        ),
        (
            "conversation.item.create",
            {"item": {"type": "message", "role": "user"}},
            "missing_required_parameter",
        ),
        ("response.teleport", {}, "invalid_value"),
    ]
    for kind, fields, code in cases:
        error = await error_for(ws, kind, **fields)
        assert error["code"] == code, (kind, fields, error)
    assert error["message"].startswith("Invalid value: 'response.teleport'. Supported values are:")
    truncate_error = await error_for(
        ws,
        "conversation.item.truncate",
        item_id=spoken["item"]["id"],
        content_index=0,
        audio_end_ms=0,
    )
    assert truncate_error["message"] == "Only model output audio messages can be truncated"


async def test_malformed_client_frames_get_errors_and_the_session_goes_on(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator)
    await configure(ws)
    await ws.send("{not json")
    error, _ = await recv_until(ws, "error")
    assert error["error"]["code"] == "invalid_json"
    await ws.send(b"\x00\x01")
    error, _ = await recv_until(ws, "error")
    assert error["error"]["code"] == "invalid_json"
    await ws.send(json.dumps({"no_type": 1}))
    error, _ = await recv_until(ws, "error")
    assert error["error"]["code"] == "missing_required_parameter"
    await send(ws, "input_audio_buffer.append", audio="***")
    error, _ = await recv_until(ws, "error")
    assert error["error"]["param"] == "audio"
    await send(ws, "session.update", session={"type": "realtime"})
    await recv_until(ws, "session.updated")


# -- behaviours ------------------------------------------------------------------------------


async def test_tool_behaviour_calls_the_first_tool_then_speaks_the_output(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator, behavior="tool", pace=float("inf"))
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "d",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["days", "city"],
        },
    }
    await configure(ws, tools=[tool], audio=vad())
    await send_audio(ws, utterance())
    done, seen = await recv_until(ws, "response.done")
    order = [t for t in types(seen) if t.startswith(("response.", "conversation.item"))]
    assert order[order.index("response.created") :] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
    ]
    call = done["response"]["output"][0]
    assert (call["type"], call["name"], call["status"]) == (
        "function_call",
        "get_weather",
        "completed",
    )
    # Fitted to the schema: the transcript in the string parameter, the least whole number.
    assert json.loads(call["arguments"]) == {"city": "alpha bravo charlie", "days": 1}
    args_done = next(e for e in seen if e["type"] == "response.function_call_arguments.done")
    assert (args_done["call_id"], args_done["arguments"]) == (call["call_id"], call["arguments"])

    await send(
        ws,
        "conversation.item.create",
        item={
            "type": "function_call_output",
            "call_id": call["call_id"],
            "output": "sunny and warm",
        },
    )
    await send(ws, "response.create")
    done, seen = await recv_until(ws, "response.done")
    transcript = next(e for e in seen if e["type"] == "response.output_audio_transcript.done")
    assert transcript["transcript"] == "sunny and warm"
    audio = pcm([e["delta"] for e in seen if e["type"] == "response.output_audio.delta"])
    assert len(audio) == 3 * 400 * 24  # one 400 ms synthetic word per word
    assert done["response"]["usage"]["output_token_details"]["audio_tokens"] == 24


async def test_text_modality_streams_output_text(simulator: SimulatorFactory) -> None:
    ws = await connected(simulator, pace=float("inf"))
    await configure(ws, output_modalities=["text"])
    await send(
        ws,
        "conversation.item.create",
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "how are you"}],
        },
    )
    await send(ws, "response.create")
    done, seen = await recv_until(ws, "response.done")
    kinds = types(seen)
    assert "response.output_audio.delta" not in kinds
    deltas = [e["delta"] for e in seen if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "how are you"
    part = next(e for e in seen if e["type"] == "response.content_part.added")["part"]
    assert part == {"type": "text", "text": ""}
    assert done["response"]["output"][0]["content"] == [
        {"type": "output_text", "text": "how are you"}
    ]
    assert done["response"]["output_modalities"] == ["text"]


@pytest.mark.parametrize(
    ("asr", "usage_type"), [("gpt-4o-transcribe", "tokens"), ("whisper-1", "duration")]
)
async def test_input_transcription_follows_each_committed_turn(
    simulator: SimulatorFactory, asr: str, usage_type: str
) -> None:
    ws = await connected(simulator, pace=float("inf"))
    audio = vad()
    audio["input"]["transcription"] = {"model": asr}
    await configure(ws, audio=audio)
    await send_audio(ws, utterance())
    completed, seen = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    committed = next(e for e in seen if e["type"] == "input_audio_buffer.committed")
    deltas = [e for e in seen if e["type"] == "conversation.item.input_audio_transcription.delta"]
    assert "".join(d["delta"] for d in deltas) == completed["transcript"] == "alpha bravo charlie"
    assert completed["item_id"] == committed["item_id"]
    assert completed["usage"]["type"] == usage_type
    await recv_until(ws, "response.done")


async def test_vad_defaults_echo_a_turn_and_barge_in_cancels_with_turn_detected(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator, pace=1.0)
    created = await recv(ws)
    assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    await send_audio(ws, np.concatenate([silence(0.2), voiced(1.0), silence(0.3)]))
    await recv_until(ws, "response.output_audio.delta")
    await send_audio(ws, voiced(0.1))
    started, _ = await recv_until(ws, "input_audio_buffer.speech_started")
    done, _ = await recv_until(ws, "response.done")
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    assert started["audio_start_ms"] >= 1500 - 300 - 10


async def test_latency_delays_the_first_output_and_pace_spreads_the_audio(
    simulator: SimulatorFactory,
) -> None:
    ws = await connected(simulator, behavior="tone", latency_ms=300, pace=4.0)
    await configure(ws)
    await send(ws, "response.create")
    await recv_until(ws, "response.created")
    created_at = time.monotonic()
    await recv_until(ws, "response.output_item.added")
    first_output_at = time.monotonic()
    done, seen = await recv_until(ws, "response.done")
    finished_at = time.monotonic()
    assert first_output_at - created_at >= 0.29  # think time before the first output
    assert finished_at - first_output_at >= 1.5 / 4 - 0.05  # 1.5 s of audio at 4x real time
    deltas = [e for e in seen if e["type"] == "response.output_audio.delta"]
    assert len(deltas) == 1500 // 40 + 1  # 40 ms deltas (the last one partial)
    assert done["response"]["status"] == "completed"
