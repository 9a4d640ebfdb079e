"""Typed server events produced by the protocol core.

Each class is a frozen dataclass named after what happened, not after the wire name; the
wire names (GA, with beta/Azure-preview names mapped onto them) are listed in
``sessions.protocol``. Only the fields the bridge uses are kept; the raw frame is not.
Identifiers are ``NewType`` strings so that an item id is never passed where a response id
is expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

from sessions.errors import UpstreamError
from sessions.usage import Usage

ItemId = NewType("ItemId", str)
ResponseId = NewType("ResponseId", str)
CallId = NewType("CallId", str)


@dataclass(frozen=True, slots=True)
class Item:
    """A conversation item as the server described it (never with audio bytes)."""

    id: ItemId
    type: str  # "message" | "function_call" | "function_call_output" | ...
    role: str | None = None  # "user" | "assistant" | "system" for messages
    status: str | None = None
    text: str = ""  # text content or audio transcript, as far as the server has told us
    has_audio: bool = False
    call_id: CallId | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session: Mapping[str, Any]
    expires_at: float | None  # unix seconds, when the server will end the session


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    session: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int
    item_id: ItemId


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int
    item_id: ItemId


@dataclass(frozen=True, slots=True)
class InputCommitted:
    item_id: ItemId
    previous_item_id: ItemId | None


@dataclass(frozen=True, slots=True)
class InputCleared:
    pass


@dataclass(frozen=True, slots=True)
class InputTimeout:
    audio_start_ms: int
    audio_end_ms: int
    item_id: ItemId


@dataclass(frozen=True, slots=True)
class ItemAdded:
    item: Item
    previous_item_id: ItemId | None


@dataclass(frozen=True, slots=True)
class ItemDone:
    item: Item


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    item_id: ItemId
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemDeleted:
    item_id: ItemId


@dataclass(frozen=True, slots=True)
class InputTranscriptDelta:
    item_id: ItemId
    delta: str


@dataclass(frozen=True, slots=True)
class InputTranscriptCompleted:
    item_id: ItemId
    transcript: str


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed:
    item_id: ItemId
    message: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: ResponseId


@dataclass(frozen=True, slots=True)
class OutputItemAdded:
    response_id: ResponseId
    item: Item


@dataclass(frozen=True, slots=True)
class OutputItemDone:
    response_id: ResponseId
    item: Item


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """Whole PCM16 samples of an assistant item (odd bytes are carried to the next delta)."""

    response_id: ResponseId
    item_id: ItemId
    pcm: bytes


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: ResponseId
    item_id: ItemId


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """Text of an assistant item: the audio transcript, or the text output in text mode."""

    response_id: ResponseId
    item_id: ItemId
    delta: str


@dataclass(frozen=True, slots=True)
class TranscriptDone:
    response_id: ResponseId
    item_id: ItemId
    transcript: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The model asks for a tool call (from ``response.function_call_arguments.done``)."""

    response_id: ResponseId
    item_id: ItemId
    call_id: CallId
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: ResponseId
    status: str  # completed | cancelled | failed | incomplete
    reason: str | None  # turn_detected | client_cancelled | max_output_tokens | ...
    usage: Usage | None
    output: tuple[Item, ...] = ()
    error: UpstreamError | None = None  # for status "failed"


@dataclass(frozen=True, slots=True)
class RateLimitsUpdated:
    limits: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """An ``error`` event, classified and tied to the request that caused it when known."""

    error: UpstreamError


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A server frame the core could not use (malformed JSON, binary, missing fields)."""

    reason: str
    excerpt: str = field(default="")


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | InputCommitted
    | InputCleared
    | InputTimeout
    | ItemAdded
    | ItemDone
    | ItemTruncated
    | ItemDeleted
    | InputTranscriptDelta
    | InputTranscriptCompleted
    | InputTranscriptFailed
    | ResponseCreated
    | OutputItemAdded
    | OutputItemDone
    | AudioDelta
    | AudioDone
    | TranscriptDelta
    | TranscriptDone
    | FunctionCall
    | ResponseDone
    | RateLimitsUpdated
    | ErrorReceived
    | FrameRejected
)
