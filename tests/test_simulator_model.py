"""The sans-I/O core: VAD in audio time, transcripts and truncation, limits. No socket, no clock."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sessions.simulator import SimulatorConfig, SimulatorStats
from sessions.simulator.audio import AudioFormat, decode, encode, rms_dbfs
from sessions.simulator.model import ModelSession
from sessions.simulator.vad import threshold_dbfs
from tests.realtime_schema import check_event
from tests.simclient import silence, utterance, voiced


class Core:
    """A ``ModelSession`` driven by hand; every event it produces is schema-checked."""

    def __init__(self, **config: Any) -> None:
        self.session = ModelSession(
            SimulatorConfig(**config),
            model="gpt-realtime",
            dialect="ga",
            now=0.0,
            stats=SimulatorStats(),
        )
        self.session.start()
        self.drain()

    def drain(self) -> list[dict[str, Any]]:
        events = self.session.events_to_send()
        for event in events:
            assert check_event("ga", event) == [], event
        return events

    def send(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        self.session.receive_text(json.dumps({"type": kind, **fields}))
        return self.drain()

    def append(self, data: bytes) -> list[dict[str, Any]]:
        return self.send("input_audio_buffer.append", audio=base64.b64encode(data).decode())

    def listen(self, turn_detection: dict[str, Any], **audio_input: Any) -> None:
        """``session.update`` with this turn detection (and other ``audio.input`` fields)."""
        audio = {"input": {"turn_detection": turn_detection, **audio_input}}
        updated = self.send("session.update", session={"type": "realtime", "audio": audio})
        assert updated[0]["type"] == "session.updated", updated

    def run_response(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while self.session.next_step() is not None:
            events += self.drain()
        return events


def vad_events(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [
        (e["type"].rsplit(".", 1)[1], e.get("audio_start_ms", e.get("audio_end_ms", -1)))
        for e in events
        if e["type"] in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped")
    ]


SIGNAL = utterance(lead=0.5, speech=1.0, tail=0.6).tobytes()


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.lists(st.integers(min_value=1, max_value=12_000), min_size=1, max_size=30))
def test_vad_positions_are_in_audio_time_whatever_the_chunking(sizes: list[int]) -> None:
    core = Core()
    core.listen({"type": "server_vad", "silence_duration_ms": 300, "create_response": False})
    events: list[dict[str, Any]] = []
    position = 0
    index = 0
    while position < len(SIGNAL):  # arbitrary append sizes (odd ones split samples) ...
        size = sizes[index] if index < len(sizes) else 4801  # ... then odd 50 ms chunks
        events += core.append(SIGNAL[position : position + size])
        position += size
        index += 1
    assert vad_events(events) == [("speech_started", 200), ("speech_stopped", 1500)]
    added = next(e for e in events if e["type"] == "conversation.item.added")
    retrieved = core.send("conversation.item.retrieve", item_id=added["item"]["id"])[0]
    audio = base64.b64decode(retrieved["item"]["content"][0]["audio"])
    assert audio == SIGNAL[200 * 48 : 1500 * 48]  # prefix padding to the end of speech


@pytest.mark.parametrize(
    ("level_dbfs", "threshold", "detected"),
    [
        (-30.0, 0.5, True),
        (-20.0, 0.5, True),
        (-50.0, 0.5, False),
        (-20.0, 0.9, False),
        (-50.0, 0.2, True),
    ],
)
def test_threshold_maps_to_an_rms_level(
    level_dbfs: float, threshold: float, detected: bool
) -> None:
    assert threshold_dbfs(0.5) == -40.0
    core = Core()
    td = {"type": "server_vad", "threshold": threshold, "create_response": False}
    core.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": td}}}
    )
    speech = voiced(0.5, dbfs=level_dbfs)
    assert abs(rms_dbfs(speech) - level_dbfs) < 0.1
    events = core.append(np.concatenate([speech, silence(1.0)]).tobytes())
    assert bool(vad_events(events)) is detected


@pytest.mark.parametrize(
    ("eagerness", "silence_ms"), [("low", 1000), ("medium", 500), ("high", 250), ("auto", 500)]
)
def test_semantic_vad_waits_for_silence_by_eagerness(eagerness: str, silence_ms: int) -> None:
    core = Core()
    td = {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
    core.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": td}}}
    )
    events = core.append(np.concatenate([voiced(0.5), silence((silence_ms - 10) / 1000)]).tobytes())
    assert [kind for kind, _ in vad_events(events)] == ["speech_started"]
    assert [kind for kind, _ in vad_events(core.append(silence(0.01).tobytes()))] == [
        "speech_stopped"
    ]


def test_g711_input_is_counted_at_8_bytes_per_ms() -> None:
    core = Core()
    vad = {"type": "server_vad", "silence_duration_ms": 300, "create_response": False}
    core.send(
        "session.update",
        session={
            "type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": vad}},
        },
    )
    samples_8k = utterance(0.5, 1.0, 0.5)[::3]
    events = core.append(encode(samples_8k, AudioFormat.PCMU))
    assert vad_events(events) == [("speech_started", 200), ("speech_stopped", 1500)]


def test_long_silence_is_trimmed_without_losing_the_time_base() -> None:
    core = Core()
    td = {"type": "server_vad", "silence_duration_ms": 300, "create_response": False}
    core.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": td}}}
    )
    for _ in range(15):
        assert core.append(silence(1.0).tobytes()) == []
    events = core.append(utterance(0.0, 1.0, 0.5).tobytes())
    assert vad_events(events) == [("speech_started", 15000 - 300), ("speech_stopped", 16000)]


@pytest.mark.parametrize("cut_ms", [0, 100, 250, 300, 800, 1500])
def test_transcript_deltas_follow_the_audio_and_truncation_keeps_the_heard_words(
    cut_ms: int,
) -> None:
    core = Core(behavior="tone", delta_ms=50)  # 1.5 s, 6 words: one every 250 ms
    core.send("response.create")
    received_ms = 0.0
    heard_at: dict[int, list[str]] = {0: []}
    heard: list[str] = []
    item_id = ""
    for event in core.run_response():
        if event["type"] == "response.output_audio_transcript.delta":
            heard.append(event["delta"].strip())
        elif event["type"] == "response.output_audio.delta":
            received_ms += len(base64.b64decode(event["delta"])) / 48
            item_id = event["item_id"]
            heard_at[round(received_ms)] = list(heard)
    assert " ".join(heard) == "this is the simulator test tone"
    assert heard_at[50] == ["this"] and heard_at[300] == ["this", "is"]
    truncated = core.send(
        "conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=cut_ms
    )
    assert truncated[0]["type"] == "conversation.item.truncated"
    part = core.send("conversation.item.retrieve", item_id=item_id)[0]["item"]["content"][0]
    # A client that played cut_ms (a delta boundary) had received exactly these words: the
    # words that start before the cut.
    assert part["transcript"].split() == heard_at[cut_ms]
    assert len(base64.b64decode(part["audio"])) == cut_ms * 48


def test_an_item_cancelled_before_its_first_delta_cannot_be_truncated() -> None:
    core = Core(behavior="tone")
    core.send("response.create")
    assert core.session.next_step() is not None  # output item and content part, no audio yet
    header = core.drain()
    item_id = next(e for e in header if e["type"] == "response.output_item.added")["item"]["id"]
    done = core.send("response.cancel")
    assert done[-2]["response"]["status"] == "cancelled"
    assert done[-2]["response"]["usage"]["output_token_details"]["audio_tokens"] == 0
    error = core.send(
        "conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=0
    )
    assert error[0]["error"]["code"] == "unsupported_content_type"


def test_max_output_tokens_cuts_the_reply_short() -> None:
    core = Core(behavior="tone")
    core.send("response.create", response={"max_output_tokens": 10})
    events = core.run_response()
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert len(audio) == 500 * 48  # 10 tokens of 50 ms
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert done["usage"]["output_token_details"]["audio_tokens"] == 10


def test_usage_counts_context_audio_and_generated_audio() -> None:
    core = Core(pace=float("inf"))
    core.send("session.update", session={"type": "realtime", "instructions": "x" * 400})
    events = core.append(utterance(0.5, 1.0, 1.0).tobytes())
    assert any(e["type"] == "input_audio_buffer.committed" for e in events)
    done = next(e for e in core.run_response() if e["type"] == "response.done")["response"]
    usage = done["usage"]
    assert usage["input_token_details"]["audio_tokens"] == 13  # 1.3 s of user audio, 10/s
    assert usage["input_token_details"]["text_tokens"] == 100  # 400 characters / 4
    assert usage["output_token_details"] == {"text_tokens": 3, "audio_tokens": 20}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_g711_output_is_sent_at_8_bytes_per_ms() -> None:
    core = Core(behavior="tone")
    core.send(
        "session.update",
        session={"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcmu"}}}},
    )
    events = core.send("response.create") + core.run_response()
    deltas = [
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    ]
    assert {len(d) for d in deltas[:-1]} == {40 * 8} and sum(map(len, deltas)) == 1500 * 8
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert done["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    samples = decode(b"".join(deltas), AudioFormat.PCMU).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 8000 / len(samples) - 440) < 5  # still the 440 Hz tone


def test_ids_have_the_real_shapes() -> None:
    core = Core(behavior="tool")
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    core.send("session.update", session={"type": "realtime", "tools": [tool]})
    events = core.append(utterance().tobytes()) + core.run_response()
    assert len(events) > 10
    for event in events:
        assert re.fullmatch(r"event_[A-Za-z0-9]{21}", event["event_id"]), event
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert re.fullmatch(r"resp_[A-Za-z0-9]{21}", done["id"])
    assert re.fullmatch(r"conv_[A-Za-z0-9]{21}", done["conversation_id"])
    call = done["output"][0]
    assert re.fullmatch(r"item_[A-Za-z0-9]{21}", call["id"])
    assert re.fullmatch(r"call_[A-Za-z0-9]{21}", call["call_id"])
    assert re.fullmatch(r"sess_[A-Za-z0-9]{21}", core.session.session["id"])
