"""Server frames for protocol-core tests, each validated against the SDK's GA models.

Tests must not invent wire shapes: every frame built here passes the same check as every
simulator event (``tests.realtime_schema``: the SDK's GA models, or the beta union for beta
frames, misspelt fields included), so a test can only feed the core what a real server could
send. ``validated=False`` is for the tests that feed deliberately unknown events.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from tests.realtime_schema import check_event

_ids = itertools.count(1)


def validate(frame: dict[str, Any], *, beta: bool = False) -> None:
    """Raise ``AssertionError`` listing what is wrong if ``frame`` is not a valid event."""
    problems = check_event("beta" if beta else "ga", frame)
    assert not problems, problems


def event(type: str, *, beta: bool = False, validated: bool = True, **fields: Any) -> str:
    """One server frame as JSON text, with an ``event_id``; validated unless told otherwise."""
    frame = {"type": type, "event_id": f"event_{next(_ids):021d}", **fields}
    if validated:
        validate(frame, beta=beta)
    return json.dumps(frame)


def b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


def session_created(expires_at: int = 2_000_000_000) -> str:
    return event(
        "session.created",
        session={
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_test",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "expires_at": expires_at,
        },
    )


def response_created(response_id: str) -> str:
    return event(
        "response.created",
        response={"id": response_id, "object": "realtime.response", "status": "in_progress"},
    )


def response_done(
    response_id: str,
    status: str = "completed",
    reason: str | None = None,
    usage: dict[str, Any] | None = None,
    output: list[dict[str, Any]] | None = None,
) -> str:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "output": output or [],
    }
    if reason is not None:
        response["status_details"] = {"type": status, "reason": reason}
    if usage is not None:
        response["usage"] = usage
    return event("response.done", response=response)


def assistant_item(
    item_id: str, status: str = "in_progress", transcript: str = ""
) -> dict[str, Any]:
    content = [{"type": "output_audio", "transcript": transcript}] if transcript else []
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def output_item_added(response_id: str, item_id: str) -> str:
    return event(
        "response.output_item.added",
        response_id=response_id,
        output_index=0,
        item=assistant_item(item_id),
    )


def audio_delta(response_id: str, item_id: str, pcm: bytes | str, *, beta: bool = False) -> str:
    return event(
        "response.audio.delta" if beta else "response.output_audio.delta",
        beta=beta,
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta=pcm if isinstance(pcm, str) else b64(pcm),
    )


def audio_done(response_id: str, item_id: str) -> str:
    return event(
        "response.output_audio.done",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
    )


def transcript_delta(response_id: str, item_id: str, delta: str) -> str:
    return event(
        "response.output_audio_transcript.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        delta=delta,
    )


def error(
    code: str | None,
    message: str = "something failed",
    event_id: str | None = None,
    type: str = "invalid_request_error",
) -> str:
    return event(
        "error",
        error={"type": type, "code": code, "message": message, "param": None, "event_id": event_id},
    )


USAGE = {
    "total_tokens": 320,
    "input_tokens": 132,
    "output_tokens": 188,
    "input_token_details": {
        "text_tokens": 59,
        "audio_tokens": 73,
        "image_tokens": 0,
        "cached_tokens": 64,
        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 64, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 41, "audio_tokens": 147},
}
