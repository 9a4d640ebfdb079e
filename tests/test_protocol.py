"""The sans-I/O protocol core: frames in, events out; calls in, frames out. No socket."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np
import pytest

from sessions import events as ev
from sessions.error_codes import ERROR_CODES, classify
from sessions.errors import ErrorKind, InvalidState, SessionUpdateRejected
from sessions.protocol import MAX_TRACKED, RealtimeProtocol
from tests import frames as f
from tests.simclient import types

PCM_20MS = (np.arange(480, dtype=np.int16) * 7).tobytes()


def sent(p: RealtimeProtocol) -> list[dict[str, Any]]:
    return [json.loads(frame.data) for frame in p.data_to_send()]


def feed(p: RealtimeProtocol, *texts: str) -> list[ev.ServerEvent]:
    for text in texts:
        p.receive_text(text)
    return p.events_received()


def start_response(p: RealtimeProtocol, rid: str = "resp_1", iid: str = "item_a") -> None:
    feed(p, f.response_created(rid), f.output_item_added(rid, iid))


# ---------------------------------------------------------------- session


def test_session_created_opens_the_protocol_and_reports_expiry() -> None:
    p = RealtimeProtocol()
    [event] = feed(p, f.session_created(expires_at=1_900_000_000))
    assert isinstance(event, ev.SessionCreated)
    assert event.expires_at == 1_900_000_000.0
    assert p.expires_at == 1_900_000_000.0
    assert p.state.name == "OPEN"


def test_rejected_session_update_is_tied_to_the_request_and_fatal() -> None:
    p = RealtimeProtocol()
    event_id = p.update_session({"type": "realtime", "voice": "nobody"})
    [frame] = sent(p)
    assert frame["event_id"] == event_id
    [event] = feed(p, f.error("invalid_value", "Invalid value: 'nobody'.", event_id=event_id))
    assert isinstance(event, ev.ErrorReceived)
    assert isinstance(event.error, SessionUpdateRejected)
    assert event.error.kind is ErrorKind.FATAL
    assert event.error.request_type == "session.update"
    assert p.pending_requests == 0


def test_session_updated_acknowledges_the_update() -> None:
    p = RealtimeProtocol()
    p.update_session({"type": "realtime"})
    assert p.pending_requests == 1
    [event] = feed(p, f.event("session.updated", session={"type": "realtime"}))
    assert isinstance(event, ev.SessionUpdated)
    assert p.pending_requests == 0


# ---------------------------------------------------------------- audio out


def test_append_carries_the_audio_exactly_and_counts_samples() -> None:
    p = RealtimeProtocol()
    p.append_audio(PCM_20MS)
    [frame] = p.data_to_send()
    assert frame.samples == 480
    decoded = json.loads(frame.data)
    assert decoded == {"type": "input_audio_buffer.append", "audio": f.b64(PCM_20MS)}
    assert p.stats.audio_bytes_out == 960


def test_append_accepts_numpy_arrays_and_memoryviews() -> None:
    p = RealtimeProtocol()
    array = np.frombuffer(PCM_20MS, dtype=np.int16)
    p.append_audio(array)
    p.append_audio(memoryview(PCM_20MS))
    audio = [base64.b64decode(json.loads(x.data)["audio"]) for x in p.data_to_send()]
    assert audio == [PCM_20MS, PCM_20MS]


def test_calls_after_close_are_a_bug() -> None:
    p = RealtimeProtocol()
    p.close()
    with pytest.raises(InvalidState):
        p.append_audio(PCM_20MS)
    with pytest.raises(InvalidState):
        p.commit_audio()


# ---------------------------------------------------------------- responses


def test_response_create_is_held_while_one_is_active_and_sent_after_done() -> None:
    p = RealtimeProtocol()
    assert p.create_response() is not None
    assert types(sent(p)) == ["response.create"]
    assert p.create_response({"instructions": "again"}) is None  # held
    assert sent(p) == []
    assert p.create_held
    feed(p, f.response_created("resp_1"))
    assert sent(p) == []
    feed(p, f.response_done("resp_1"))
    [frame] = sent(p)
    assert frame["type"] == "response.create"
    assert frame["response"] == {"instructions": "again"}
    assert p.response_active


def test_losing_the_race_with_a_vad_response_holds_the_create_for_later() -> None:
    p = RealtimeProtocol()
    event_id = p.create_response()
    sent(p)
    # The server had just started its own response (VAD); ours is refused.
    events = feed(
        p,
        f.response_created("resp_vad"),
        f.error(
            "conversation_already_has_active_response",
            "Conversation already has an active response in progress: resp_vad.",
            event_id=event_id,
        ),
    )
    error = events[-1]
    assert isinstance(error, ev.ErrorReceived)
    assert error.error.kind is ErrorKind.BENIGN
    assert p.create_held
    feed(p, f.response_done("resp_vad"))
    assert types(sent(p)) == ["response.create"]


def test_cancel_sends_nothing_when_no_response_is_active() -> None:
    p = RealtimeProtocol()
    assert p.cancel_response() is None
    assert sent(p) == []


def test_cancel_names_the_active_response() -> None:
    p = RealtimeProtocol()
    start_response(p)
    p.cancel_response()
    [frame] = sent(p)
    assert frame == {
        "type": "response.cancel",
        "response_id": "resp_1",
        "event_id": frame["event_id"],
    }


def test_response_done_reports_status_reason_and_usage() -> None:
    p = RealtimeProtocol()
    start_response(p)
    [done] = feed(p, f.response_done("resp_1", "cancelled", "turn_detected", usage=f.USAGE))
    assert isinstance(done, ev.ResponseDone)
    assert (done.status, done.reason) == ("cancelled", "turn_detected")
    assert done.usage is not None
    assert (done.usage.audio_in, done.usage.audio_in_cached, done.usage.audio_out) == (73, 64, 147)
    assert not p.response_active


def test_response_done_without_created_still_clears_the_active_response() -> None:
    p = RealtimeProtocol()
    p.create_response()
    feed(p, f.response_done("resp_x", "cancelled", "turn_detected"))
    assert not p.response_active


# ---------------------------------------------------------------- audio in


def test_audio_deltas_are_counted_per_item() -> None:
    p = RealtimeProtocol()
    start_response(p)
    events = feed(p, *(f.audio_delta("resp_1", "item_a", PCM_20MS) for _ in range(3)))
    assert [type(e) for e in events] == [ev.AudioDelta] * 3
    assert b"".join(e.pcm for e in events if isinstance(e, ev.AudioDelta)) == PCM_20MS * 3
    record = p.conversation.get("item_a")
    assert record is not None and record.audio_ms == 60


def test_odd_and_empty_deltas_reassemble_whole_samples() -> None:
    p = RealtimeProtocol()
    start_response(p)
    audio = PCM_20MS * 2
    cuts = [0, 1, 1, 2, 333, 334, 900, 900, 1919, 1920]
    chunks = [audio[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    events = feed(p, *(f.audio_delta("resp_1", "item_a", c) for c in chunks))
    pcm = [e.pcm for e in events if isinstance(e, ev.AudioDelta)]
    assert all(len(x) % 2 == 0 for x in pcm)
    assert b"".join(pcm) == audio
    assert p.stats.empty_deltas == 2
    assert p.stats.odd_deltas >= 2


def test_deltas_of_a_discarded_response_are_dropped() -> None:
    p = RealtimeProtocol()
    start_response(p)
    p.discard_response("resp_1")
    events = feed(
        p,
        f.audio_delta("resp_1", "item_a", PCM_20MS),
        f.transcript_delta("resp_1", "item_a", "hello"),
    )
    assert events == []
    assert p.stats.discarded_deltas == 2


def test_the_oldest_discarded_response_is_forgotten_first() -> None:
    """Past MAX_TRACKED discarded responses, the oldest is evicted (it ended long ago), never
    the one just talked over, whose deltas may still be arriving."""
    p = RealtimeProtocol()
    for n in range(MAX_TRACKED + 1):
        p.discard_response(f"resp_{n}")
    newest = f"resp_{MAX_TRACKED}"
    assert feed(p, f.audio_delta(newest, "item_n", PCM_20MS)) == []
    assert feed(p, f.audio_delta("resp_1", "item_1", PCM_20MS)) == []
    [heard] = feed(p, f.audio_delta("resp_0", "item_0", PCM_20MS))
    assert isinstance(heard, ev.AudioDelta) and heard.response_id == "resp_0"


def test_beta_names_are_mapped_to_ga_events() -> None:
    p = RealtimeProtocol()
    [delta] = feed(p, f.audio_delta("resp_1", "item_a", PCM_20MS, beta=True))
    assert isinstance(delta, ev.AudioDelta)
    [added] = feed(
        p,
        f.event(
            "conversation.item.created",
            beta=True,
            previous_item_id=None,
            item={"id": "item_u", "type": "message", "role": "user", "content": []},
        ),
    )
    assert isinstance(added, ev.ItemAdded)
    [text] = feed(
        p,
        f.event(
            "response.audio_transcript.delta",
            beta=True,
            response_id="resp_1",
            item_id="item_a",
            output_index=0,
            content_index=0,
            delta="hi",
        ),
    )
    assert isinstance(text, ev.TranscriptDelta)


# ---------------------------------------------------------------- truncation


def test_truncate_is_clamped_to_the_audio_received() -> None:
    p = RealtimeProtocol()
    start_response(p)
    feed(p, *(f.audio_delta("resp_1", "item_a", PCM_20MS) for _ in range(5)))  # 100 ms
    result = p.truncate("item_a", played_ms=250)
    assert (result.action, result.audio_end_ms, result.received_ms) == ("truncate", 100, 100)
    [frame] = sent(p)
    assert frame["type"] == "conversation.item.truncate"
    assert (frame["item_id"], frame["content_index"], frame["audio_end_ms"]) == ("item_a", 0, 100)


def test_truncate_at_zero_deletes_the_item() -> None:
    p = RealtimeProtocol()
    start_response(p)
    result = p.truncate("item_a", played_ms=0)
    assert result.action == "delete"
    [frame] = sent(p)
    assert frame["type"] == "conversation.item.delete"


def test_truncate_of_a_fully_played_finished_item_sends_nothing() -> None:
    p = RealtimeProtocol()
    start_response(p)
    feed(p, f.audio_delta("resp_1", "item_a", PCM_20MS), f.audio_done("resp_1", "item_a"))
    assert p.truncate("item_a", played_ms=20).action == "skip"
    assert sent(p) == []


def test_truncate_errors_are_benign() -> None:
    p = RealtimeProtocol()
    start_response(p)
    feed(p, f.audio_delta("resp_1", "item_a", PCM_20MS))
    p.truncate("item_a", played_ms=10)
    [frame] = sent(p)
    [event] = feed(
        p,
        f.error(None, "Audio content of 10ms is already shorter than 12ms", frame["event_id"]),
    )
    assert isinstance(event, ev.ErrorReceived)
    assert event.error.kind is ErrorKind.BENIGN
    assert event.error.request_type == "conversation.item.truncate"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("session_expired", ErrorKind.RETRYABLE),
        ("beta_api_shape_disabled", ErrorKind.FATAL),
        ("conversation_already_has_active_response", ErrorKind.BENIGN),
        ("response_cancel_not_active", ErrorKind.BENIGN),
        ("input_audio_buffer_commit_empty", ErrorKind.BENIGN),
        ("item_truncate_invalid_item_id", ErrorKind.BENIGN),
        ("unsupported_content_type", ErrorKind.BENIGN),
        ("item_retrieve_invalid_item_id", ErrorKind.BENIGN),
        ("unknown_parameter", ErrorKind.RETRYABLE),
        ("missing_required_parameter", ErrorKind.RETRYABLE),
        ("invalid_value", ErrorKind.RETRYABLE),
        ("invalid_api_key", ErrorKind.FATAL),
        ("insufficient_quota", ErrorKind.FATAL),
        ("account_deactivated", ErrorKind.FATAL),
        ("billing_hard_limit_reached", ErrorKind.FATAL),
        ("rate_limit_exceeded", ErrorKind.RETRYABLE),
        ("model_not_found", ErrorKind.FATAL),
        (None, ErrorKind.RETRYABLE),
    ],
)
def test_every_documented_code_has_a_kind(code: str | None, kind: ErrorKind) -> None:
    assert classify(code) is kind


def test_server_error_type_without_code_is_retryable() -> None:
    assert classify(None, "server_error") is ErrorKind.RETRYABLE
    assert set(ERROR_CODES.values()) == set(ErrorKind)


def test_error_with_unknown_event_id_is_still_reported() -> None:
    p = RealtimeProtocol()
    [event] = feed(p, f.error("server_error", "boom", event_id="evt_not_ours", type="server_error"))
    assert isinstance(event, ev.ErrorReceived)
    assert event.error.request_type is None
    assert p.stats.errors["server_error"] == 1


def test_cancel_not_active_clears_our_idea_of_an_active_response() -> None:
    p = RealtimeProtocol()
    p.create_response()
    sent(p)
    feed(p, f.response_created("resp_1"))
    event_id = p.cancel_response()
    sent(p)
    feed(p, f.error("response_cancel_not_active", "Cancellation failed", event_id=event_id))
    assert not p.response_active


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2, 3]",
        '"a string"',
        '{"no_type": 1}',
        '{"type": 42}',
        '{"type": "response.output_audio.delta", "delta": "AAAA"}',  # no ids
        '{"type": "response.output_audio.delta", "response_id": "r", "item_id": "i",'
        ' "delta": "not base64!"}',
        '{"type": "input_audio_buffer.speech_started", "audio_start_ms": "soon", "item_id": "i"}',
        '{"type": "error", "error": "not an object"}',
        '{"type": "response.done", "response": null}',
        "",
    ],
)
def test_malformed_frames_are_reported_not_raised(text: str) -> None:
    p = RealtimeProtocol()
    [event] = feed(p, text)
    assert isinstance(event, ev.FrameRejected)
    assert p.stats.malformed == 1


def test_binary_frames_are_reported() -> None:
    p = RealtimeProtocol()
    p.receive_bytes(b"\x00\x01binary")
    [event] = p.events_received()
    assert isinstance(event, ev.FrameRejected)
    assert p.stats.binary_frames == 1


def test_unknown_types_and_fields_are_counted_and_skipped() -> None:
    p = RealtimeProtocol()
    events = feed(
        p,
        f.event("response.future_feature.delta", validated=False, delta="x"),
        f.event(
            "input_audio_buffer.speech_started",
            validated=False,
            audio_start_ms=5,
            item_id="item_u",
            confidence=0.9,
            novelty={"a": 1},
        ),
    )
    assert [type(e) for e in events] == [ev.SpeechStarted]
    assert p.stats.unknown_types["response.future_feature.delta"] == 1
    assert p.stats.unknown_fields == 2


def test_function_call_is_reported_once_with_its_arguments() -> None:
    p = RealtimeProtocol()
    [call] = feed(
        p,
        f.event(
            "response.function_call_arguments.done",
            response_id="resp_1",
            item_id="item_f",
            output_index=0,
            call_id="call_1",
            name="lookup",
            arguments='{"q": "x"}',
        ),
    )
    assert isinstance(call, ev.FunctionCall)
    assert (call.call_id, call.name, call.arguments) == ("call_1", "lookup", '{"q": "x"}')


def test_event_ids_are_unique_and_never_on_appends() -> None:
    p = RealtimeProtocol()
    ids = {p.commit_audio(), p.clear_audio(), p.delete_item("item_x")}
    p.append_audio(PCM_20MS)
    frames = sent(p)
    assert len(ids) == 3
    assert "event_id" not in frames[-1]
    assert all(re.fullmatch(r"evt_c\d+", x["event_id"]) for x in frames[:-1])
