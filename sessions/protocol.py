"""The sans-I/O Realtime protocol core.

JSON text frames in, typed events out; calls in, JSON text frames out. No asyncio, no
sockets, no clock: the I/O layer pumps it (``receive_text`` → ``events_received``; calls →
``data_to_send``) and owns every timer.

What it keeps track of:

- **the active response**, so ``response.create`` is never sent while one is in flight: a
  create asked for meanwhile is held and sent when the active one is done (and re-held if the
  server says it already has one, the race with server VAD);
- **items**, in a :class:`~sessions.conversation.Conversation` mirror, with the assistant
  audio received per item, so a truncation can be clamped to it;
- **pending requests** by ``event_id``, so an ``error`` is tied to the request that caused it,
  and classified (``sessions.error_codes``) with that knowledge.

Bad server input never raises out of the core: a frame that is not JSON, not an object, has no
``type`` or lacks a field the core needs becomes a :class:`~sessions.events.FrameRejected`
event and a counter; unknown event types and unknown top-level fields are counted and skipped.
GA event names are native; the beta / Azure-preview names are mapped onto them.
"""

from __future__ import annotations

import binascii
import enum
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from pybase64 import b64decode, b64encode

from sessions import events as ev
from sessions.conversation import BYTES_PER_MS, Conversation
from sessions.error_codes import classify
from sessions.errors import ErrorKind, InvalidState, SessionUpdateRejected, UpstreamError
from sessions.events import CallId, Item, ItemId, ResponseId, ServerEvent
from sessions.usage import Usage

APPEND = "input_audio_buffer.append"
_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = b'"}'

#: Beta / Azure-preview event names → GA names.
BETA_NAMES: dict[str, str] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
    "transcription_session.updated": "session.updated",
}

#: Server events the core knows but has nothing to report for.
IGNORED_TYPES = frozenset(
    {
        "conversation.created",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.dtmf_event_received",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "response.content_part.added",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
    }
)

_COMMON = frozenset({"type", "event_id"})
_DELTA_FIELDS = _COMMON | {"response_id", "item_id", "output_index", "content_index", "delta"}
#: Top-level fields per event type (beyond ``type`` and ``event_id``); others are counted.
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    "session.created": _COMMON | {"session"},
    "session.updated": _COMMON | {"session"},
    "input_audio_buffer.speech_started": _COMMON | {"audio_start_ms", "item_id"},
    "input_audio_buffer.speech_stopped": _COMMON | {"audio_end_ms", "item_id"},
    "input_audio_buffer.committed": _COMMON | {"item_id", "previous_item_id"},
    "input_audio_buffer.cleared": _COMMON,
    "input_audio_buffer.timeout_triggered": _COMMON | {"audio_start_ms", "audio_end_ms", "item_id"},
    "conversation.item.added": _COMMON | {"item", "previous_item_id"},
    "conversation.item.done": _COMMON | {"item", "previous_item_id"},
    "conversation.item.truncated": _COMMON | {"item_id", "content_index", "audio_end_ms"},
    "conversation.item.deleted": _COMMON | {"item_id"},
    "conversation.item.input_audio_transcription.delta": _COMMON
    | {"item_id", "content_index", "delta", "logprobs", "obfuscation"},
    "conversation.item.input_audio_transcription.completed": _COMMON
    | {"item_id", "content_index", "transcript", "usage", "logprobs", "languages"},
    "conversation.item.input_audio_transcription.failed": _COMMON
    | {"item_id", "content_index", "error"},
    "response.created": _COMMON | {"response"},
    "response.done": _COMMON | {"response"},
    "response.output_item.added": _COMMON | {"response_id", "output_index", "item"},
    "response.output_item.done": _COMMON | {"response_id", "output_index", "item"},
    "response.output_audio.delta": _DELTA_FIELDS,
    "response.output_audio.done": _DELTA_FIELDS - {"delta"},
    "response.output_audio_transcript.delta": _DELTA_FIELDS | {"obfuscation"},
    "response.output_audio_transcript.done": (_DELTA_FIELDS - {"delta"}) | {"transcript"},
    "response.output_text.delta": _DELTA_FIELDS | {"obfuscation"},
    "response.output_text.done": (_DELTA_FIELDS - {"delta"}) | {"text"},
    "response.function_call_arguments.done": _COMMON
    | {"response_id", "item_id", "output_index", "call_id", "name", "arguments"},
    "rate_limits.updated": _COMMON | {"rate_limits"},
    "error": _COMMON | {"error"},
}


class ProtocolState(enum.IntEnum):
    CONNECTING = 0  # before session.created
    OPEN = 1
    CLOSED = 2  # close() was called; further calls are a bug


class OutboundFrame(NamedTuple):
    """One text frame to send, as UTF-8 JSON bytes (sent as a text frame).

    ``samples`` > 0 marks an audio append (droppable by policy).
    """

    data: bytes
    type: str
    samples: int = 0


@dataclass(slots=True)
class PendingRequest:
    type: str
    key: str | None = None  # item id for truncate/delete/create
    payload: Mapping[str, Any] | None = None  # kept for response.create, to resend


@dataclass(slots=True)
class ProtocolStats:
    """Counters for what the core received and sent; the I/O layer exports them."""

    frames_in: int = 0
    frames_out: int = 0
    appends: int = 0
    audio_bytes_out: int = 0
    audio_bytes_in: int = 0
    malformed: int = 0
    binary_frames: int = 0
    unknown_types: Counter[str] = field(default_factory=Counter)
    unknown_fields: int = 0
    empty_deltas: int = 0
    odd_deltas: int = 0
    discarded_deltas: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by code (or type when no code)
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    held_creates: int = 0


@dataclass(frozen=True, slots=True)
class Truncation:
    """What ``truncate`` decided for an interrupted item."""

    action: str  # "truncate" | "delete" | "skip"
    item_id: ItemId
    audio_end_ms: int  # what was sent (or would have been)
    received_ms: int  # audio received for the item when the decision was made


MAX_PENDING = 512
MAX_RECENT = 32
MAX_TRACKED = 64  # items with a carried odd byte; responses being discarded
MAX_TEXT = 65_536  # characters of one item's text kept


class RealtimeProtocol:
    """One Realtime conversation's wire protocol, without I/O."""

    def __init__(self, conversation: Conversation | None = None) -> None:
        self.state = ProtocolState.CONNECTING
        #: Shared across sockets by a supervisor, so item ids and audio counts survive.
        self.conversation = conversation if conversation is not None else Conversation()
        self.stats = ProtocolStats()
        self.expires_at: float | None = None
        self.server_session: Mapping[str, Any] = {}
        self._events: list[ServerEvent] = []
        self._out: list[OutboundFrame] = []
        self._seq = 0
        self._pending: OrderedDict[str, PendingRequest] = OrderedDict()
        # Requests whose success event arrived: an error may still name them (a
        # response.created we took for ours may have been the server's VAD response).
        self._recent: OrderedDict[str, PendingRequest] = OrderedDict()
        self._response_requested = False
        self._response_id: ResponseId | None = None
        self._held_create: Mapping[str, Any] | None = None
        # Responses being discarded, oldest first (a dict as an ordered set: bounded by
        # evicting the oldest, never an arbitrary one still in flight).
        self._discarded: dict[str, None] = {}
        self._odd_byte: dict[str, bytes] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "session.created": self._on_session_created,
            "session.updated": self._on_session_updated,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "input_audio_buffer.cleared": self._on_cleared,
            "input_audio_buffer.timeout_triggered": self._on_timeout,
            "conversation.item.added": self._on_item_added,
            "conversation.item.done": self._on_item_done,
            "conversation.item.truncated": self._on_item_truncated,
            "conversation.item.deleted": self._on_item_deleted,
            "conversation.item.input_audio_transcription.delta": self._on_input_delta,
            "conversation.item.input_audio_transcription.completed": self._on_input_completed,
            "conversation.item.input_audio_transcription.failed": self._on_input_failed,
            "response.created": self._on_response_created,
            "response.done": self._on_response_done,
            "response.output_item.added": self._on_output_item_added,
            "response.output_item.done": self._on_output_item_done,
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio.done": self._on_audio_done,
            "response.output_audio_transcript.delta": self._on_text_delta,
            "response.output_audio_transcript.done": self._on_transcript_done,
            "response.output_text.delta": self._on_text_delta,
            "response.output_text.done": self._on_text_done,
            "response.function_call_arguments.done": self._on_function_call,
            "rate_limits.updated": self._on_rate_limits,
            "error": self._on_error,
        }

    # ------------------------------------------------------------------ state

    @property
    def response_active(self) -> bool:
        """A response was requested or is being generated."""
        return self._response_requested or self._response_id is not None

    @property
    def active_response_id(self) -> ResponseId | None:
        return self._response_id

    @property
    def create_held(self) -> bool:
        """A ``response.create`` is waiting for the active response to finish."""
        return self._held_create is not None

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """No further calls are expected; the I/O layer closed the socket."""
        self.state = ProtocolState.CLOSED

    # ------------------------------------------------------------------ input

    def receive_text(self, text: str | bytes) -> None:
        """Feed one text frame from the server (``str``, or its UTF-8 bytes)."""
        self.stats.frames_in += 1
        try:
            frame = orjson.loads(text)
        except ValueError as exc:
            self._reject(f"not JSON ({exc.__class__.__name__})", text)
            return
        if not isinstance(frame, dict):
            self._reject("not a JSON object", text)
            return
        event_type = frame.get("type")
        if not isinstance(event_type, str):
            self._reject("no event type", text)
            return
        event_type = BETA_NAMES.get(event_type, event_type)
        handler = self._handlers.get(event_type)
        if handler is None:
            if event_type not in IGNORED_TYPES:
                self.stats.unknown_types[event_type] += 1
            return
        known = KNOWN_FIELDS.get(event_type)
        if known is not None and not frame.keys() <= known:
            self.stats.unknown_fields += len(frame.keys() - known)
        try:
            handler(frame)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            self._reject(f"{event_type}: unusable ({exc.__class__.__name__}: {exc})", text)

    def receive_bytes(self, data: bytes) -> None:
        """Feed one binary frame: the protocol has none, so it is counted and reported."""
        self.stats.frames_in += 1
        self.stats.binary_frames += 1
        self._reject("binary frame", repr(data[:40]))

    def events_received(self) -> list[ServerEvent]:
        """Drain the events produced since the last call."""
        out, self._events = self._events, []
        return out

    def _reject(self, reason: str, text: str | bytes) -> None:
        self.stats.malformed += 1
        excerpt = text[:120] if isinstance(text, str) else text[:120].decode("utf-8", "replace")
        self._events.append(ev.FrameRejected(reason=reason, excerpt=excerpt))

    # ------------------------------------------------------------------ output

    def data_to_send(self) -> list[OutboundFrame]:
        """Drain the frames queued since the last call."""
        out, self._out = self._out, []
        return out

    def _next_id(self) -> str:
        self._seq += 1
        return f"evt_c{self._seq}"

    def _send(self, payload: dict[str, Any], *, key: str | None = None) -> str:
        if self.state is ProtocolState.CLOSED:
            raise InvalidState(f"{payload['type']} after the protocol was closed")
        event_id = self._next_id()
        payload["event_id"] = event_id
        self._pending[event_id] = PendingRequest(
            payload["type"], key, payload if payload["type"] == "response.create" else None
        )
        if len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        self._out.append(OutboundFrame(orjson.dumps(payload), payload["type"]))
        self.stats.frames_out += 1
        return event_id

    def append_audio(self, pcm: bytes | bytearray | memoryview | Any) -> None:
        """Queue one ``input_audio_buffer.append`` carrying ``pcm`` (PCM16 mono 24 kHz).

        Any buffer works (bytes, memoryview, a C-contiguous int16 numpy array). Appends carry
        no ``event_id``: they have no reply, and an error about one cannot be acted upon.
        """
        if self.state is ProtocolState.CLOSED:
            raise InvalidState("input_audio_buffer.append after the protocol was closed")
        nbytes = memoryview(pcm).nbytes
        data = _APPEND_HEAD + b64encode(pcm) + _APPEND_TAIL
        self._out.append(OutboundFrame(data, APPEND, nbytes // 2))
        self.stats.appends += 1
        self.stats.frames_out += 1
        self.stats.audio_bytes_out += nbytes

    def update_session(self, session: Mapping[str, Any]) -> str:
        """Queue a ``session.update``; an error in reply becomes ``SessionUpdateRejected``."""
        return self._send({"type": "session.update", "session": dict(session)})

    def commit_audio(self) -> str:
        return self._send({"type": "input_audio_buffer.commit"})

    def clear_audio(self) -> str:
        return self._send({"type": "input_audio_buffer.clear"})

    def create_item(self, item: Mapping[str, Any], previous_item_id: str | None = None) -> str:
        payload: dict[str, Any] = {"type": "conversation.item.create", "item": dict(item)}
        if previous_item_id is not None:
            payload["previous_item_id"] = previous_item_id
        return self._send(payload, key=item.get("id"))

    def delete_item(self, item_id: str) -> str:
        return self._send({"type": "conversation.item.delete", "item_id": item_id}, key=item_id)

    def create_response(self, response: Mapping[str, Any] | None = None) -> str | None:
        """Ask for a response; held (and ``None`` returned) while another one is active."""
        params = dict(response) if response else {}
        if self.response_active:
            self._held_create = params
            self.stats.held_creates += 1
            return None
        return self._send_create(params)

    def _send_create(self, params: Mapping[str, Any]) -> str:
        payload: dict[str, Any] = {"type": "response.create"}
        if params:
            payload["response"] = dict(params)
        self._response_requested = True
        return self._send(payload)

    def cancel_response(self) -> str | None:
        """Cancel the active response; ``None`` (nothing sent) when there is none.

        A held ``response.create`` is dropped too: the caller changed its mind.
        """
        self._held_create = None
        if not self.response_active:
            return None
        payload: dict[str, Any] = {"type": "response.cancel"}
        if self._response_id is not None:
            payload["response_id"] = self._response_id
        return self._send(payload)

    def discard_response(self, response_id: str) -> None:
        """Drop further audio and text deltas of ``response_id`` (after a barge-in)."""
        self._discarded[response_id] = None
        if len(self._discarded) > MAX_TRACKED:
            del self._discarded[next(iter(self._discarded))]

    def truncate(self, item_id: str, played_ms: int) -> Truncation:
        """Cut an assistant item to what was played, clamped to the audio received.

        0 ms played → the item is deleted (a truncate would be refused: it has no audio the
        listener heard). All of a finished item's audio was played → nothing to cut, nothing
        sent. While audio may still be in flight, a truncate at the audio received is sent.
        """
        record = self.conversation.get(item_id)
        received = record.audio_ms if record is not None else 0
        end = max(0, min(int(played_ms), received))
        iid = ItemId(item_id)
        if record is not None and record.audio_complete and received > 0 and end >= received:
            return Truncation("skip", iid, end, received)
        if end == 0:
            self.delete_item(item_id)
            return Truncation("delete", iid, 0, received)
        self._send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": end,
            },
            key=item_id,
        )
        return Truncation("truncate", iid, end, received)

    # ------------------------------------------------------------------ acks

    def _ack(self, request_type: str, key: str | None = None) -> PendingRequest | None:
        for event_id, pending in self._pending.items():
            if pending.type == request_type and (key is None or pending.key == key):
                del self._pending[event_id]
                self._recent[event_id] = pending
                if len(self._recent) > MAX_RECENT:
                    self._recent.popitem(last=False)
                return pending
        return None

    # ------------------------------------------------------------------ handlers

    def _on_session_created(self, frame: dict[str, Any]) -> None:
        session = frame["session"]
        expires = session.get("expires_at")
        self.expires_at = float(expires) if isinstance(expires, int | float) else None
        self.server_session = session
        self.state = ProtocolState.OPEN
        self._events.append(ev.SessionCreated(session=session, expires_at=self.expires_at))

    def _on_session_updated(self, frame: dict[str, Any]) -> None:
        self._ack("session.update")
        self.server_session = frame["session"]
        self._events.append(ev.SessionUpdated(session=self.server_session))

    def _on_speech_started(self, frame: dict[str, Any]) -> None:
        self._events.append(
            ev.SpeechStarted(audio_start_ms=int(frame["audio_start_ms"]), item_id=frame["item_id"])
        )

    def _on_speech_stopped(self, frame: dict[str, Any]) -> None:
        self._events.append(
            ev.SpeechStopped(audio_end_ms=int(frame["audio_end_ms"]), item_id=frame["item_id"])
        )

    def _on_committed(self, frame: dict[str, Any]) -> None:
        self._ack("input_audio_buffer.commit")
        self._events.append(
            ev.InputCommitted(
                item_id=frame["item_id"], previous_item_id=frame.get("previous_item_id")
            )
        )

    def _on_cleared(self, frame: dict[str, Any]) -> None:
        self._ack("input_audio_buffer.clear")
        self._events.append(ev.InputCleared())

    def _on_timeout(self, frame: dict[str, Any]) -> None:
        self._events.append(
            ev.InputTimeout(
                audio_start_ms=int(frame["audio_start_ms"]),
                audio_end_ms=int(frame["audio_end_ms"]),
                item_id=frame["item_id"],
            )
        )

    def _on_item_added(self, frame: dict[str, Any]) -> None:
        item = parse_item(frame["item"])
        self._ack("conversation.item.create", item.id)
        self.conversation.upsert(item)
        self._events.append(ev.ItemAdded(item=item, previous_item_id=frame.get("previous_item_id")))

    def _on_item_done(self, frame: dict[str, Any]) -> None:
        item = parse_item(frame["item"])
        self.conversation.upsert(item)
        self._events.append(ev.ItemDone(item=item))

    def _on_item_truncated(self, frame: dict[str, Any]) -> None:
        item_id = frame["item_id"]
        end = int(frame["audio_end_ms"])
        self._ack("conversation.item.truncate", item_id)
        record = self.conversation.get(item_id)
        if record is not None:
            record.truncated_ms = end
        self._events.append(ev.ItemTruncated(item_id=item_id, audio_end_ms=end))

    def _on_item_deleted(self, frame: dict[str, Any]) -> None:
        item_id = frame["item_id"]
        self._ack("conversation.item.delete", item_id)
        self.conversation.remove(item_id)
        self._events.append(ev.ItemDeleted(item_id=item_id))

    def _on_input_delta(self, frame: dict[str, Any]) -> None:
        delta = frame.get("delta") or ""
        self._events.append(ev.InputTranscriptDelta(item_id=frame["item_id"], delta=str(delta)))

    def _on_input_completed(self, frame: dict[str, Any]) -> None:
        item_id = frame["item_id"]
        transcript = str(frame["transcript"])
        record = self.conversation.get(item_id)
        if record is not None:
            record.text = transcript
        self._events.append(ev.InputTranscriptCompleted(item_id=item_id, transcript=transcript))

    def _on_input_failed(self, frame: dict[str, Any]) -> None:
        error = frame.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        self._events.append(
            ev.InputTranscriptFailed(item_id=frame["item_id"], message=str(message or "failed"))
        )

    def _on_response_created(self, frame: dict[str, Any]) -> None:
        response_id = ResponseId(frame["response"]["id"])
        self._ack("response.create")
        self._response_requested = False
        self._response_id = response_id
        self._events.append(ev.ResponseCreated(response_id=response_id))

    def _on_response_done(self, frame: dict[str, Any]) -> None:
        response = frame["response"]
        response_id = ResponseId(response["id"])
        status = str(response.get("status") or "completed")
        details = response.get("status_details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
        error = None
        if status == "failed" and isinstance(details, dict):
            err = details.get("error") or {}
            code = err.get("code") if isinstance(err, dict) else None
            etype = err.get("type") if isinstance(err, dict) else None
            error = UpstreamError(
                str(err.get("message") or f"response failed ({code or etype})")
                if isinstance(err, dict)
                else "response failed",
                code=code,
                type=etype,
                request_type="response.create",
                kind=classify(code, etype),
            )
        output = tuple(parse_item(i) for i in response.get("output") or () if isinstance(i, dict))
        for item in output:
            self.conversation.upsert(item, response_id).audio_complete = True
        self._ack("response.cancel")
        if self._response_id == response_id or self._response_id is None:
            self._response_id = None
            self._response_requested = False
        self._discarded.pop(response_id, None)
        self._events.append(
            ev.ResponseDone(
                response_id=response_id,
                status=status,
                reason=reason if isinstance(reason, str) else None,
                usage=Usage.from_wire(response.get("usage")),
                output=output,
                error=error,
            )
        )
        self._release_held_create()

    def _release_held_create(self) -> None:
        if self._held_create is not None and not self.response_active:
            params, self._held_create = self._held_create, None
            self._send_create(params)

    def _on_output_item_added(self, frame: dict[str, Any]) -> None:
        response_id = ResponseId(frame["response_id"])
        item = parse_item(frame["item"])
        self.conversation.upsert(item, response_id)
        self._events.append(ev.OutputItemAdded(response_id=response_id, item=item))

    def _on_output_item_done(self, frame: dict[str, Any]) -> None:
        response_id = ResponseId(frame["response_id"])
        item = parse_item(frame["item"])
        self.conversation.upsert(item, response_id)
        self._events.append(ev.OutputItemDone(response_id=response_id, item=item))

    def _on_audio_delta(self, frame: dict[str, Any]) -> None:
        response_id: str = frame["response_id"]
        item_id: str = frame["item_id"]
        delta: str = frame["delta"]
        if response_id in self._discarded:
            self.stats.discarded_deltas += 1
            return
        if not delta:
            self.stats.empty_deltas += 1
            return
        pcm = b64decode(delta, validate=True)
        self.stats.audio_bytes_in += len(pcm)
        record = self.conversation.ensure(ItemId(item_id))
        record.audio_bytes += len(pcm)
        record.has_audio = True
        carried = self._odd_byte.pop(item_id, None)
        if carried is not None:
            pcm = carried + pcm
        if len(pcm) & 1:
            self.stats.odd_deltas += 1
            self._odd_byte[item_id] = pcm[-1:]
            if len(self._odd_byte) > MAX_TRACKED:  # a hostile server cannot grow it
                del self._odd_byte[next(iter(self._odd_byte))]
            pcm = pcm[:-1]
        if pcm:
            self._events.append(
                ev.AudioDelta(response_id=ResponseId(response_id), item_id=ItemId(item_id), pcm=pcm)
            )

    def _on_audio_done(self, frame: dict[str, Any]) -> None:
        item_id = frame["item_id"]
        self._odd_byte.pop(item_id, None)
        self.conversation.ensure(ItemId(item_id)).audio_complete = True
        self._events.append(
            ev.AudioDone(response_id=ResponseId(frame["response_id"]), item_id=ItemId(item_id))
        )

    def _on_text_delta(self, frame: dict[str, Any]) -> None:
        response_id = frame["response_id"]
        if response_id in self._discarded:
            self.stats.discarded_deltas += 1
            return
        item_id = ItemId(frame["item_id"])
        delta = str(frame["delta"])
        record = self.conversation.ensure(item_id)
        if len(record.text) < MAX_TEXT:  # a transcript cannot grow without bound
            record.text += delta
        self._events.append(
            ev.TranscriptDelta(response_id=ResponseId(response_id), item_id=item_id, delta=delta)
        )

    def _on_transcript_done(self, frame: dict[str, Any]) -> None:
        self._text_done(frame, str(frame["transcript"]))

    def _on_text_done(self, frame: dict[str, Any]) -> None:
        self._text_done(frame, str(frame["text"]))

    def _text_done(self, frame: dict[str, Any], text: str) -> None:
        item_id = ItemId(frame["item_id"])
        self.conversation.ensure(item_id).text = text
        self._events.append(
            ev.TranscriptDone(
                response_id=ResponseId(frame["response_id"]), item_id=item_id, transcript=text
            )
        )

    def _on_function_call(self, frame: dict[str, Any]) -> None:
        item_id = ItemId(frame["item_id"])
        record = self.conversation.ensure(item_id, type="function_call", role="")
        record.type = "function_call"
        record.call_id = CallId(frame["call_id"])
        record.name = str(frame["name"])
        record.arguments = str(frame["arguments"])
        self._events.append(
            ev.FunctionCall(
                response_id=ResponseId(frame["response_id"]),
                item_id=item_id,
                call_id=record.call_id,
                name=record.name,
                arguments=record.arguments,
            )
        )

    def _on_rate_limits(self, frame: dict[str, Any]) -> None:
        limits = tuple(x for x in frame["rate_limits"] if isinstance(x, dict))
        self._events.append(ev.RateLimitsUpdated(limits=limits))

    def _on_error(self, frame: dict[str, Any]) -> None:
        error = frame["error"]
        if not isinstance(error, dict):
            raise TypeError("error is not an object")
        code = error.get("code")
        code = code if isinstance(code, str) else None
        etype = error.get("type")
        etype = etype if isinstance(etype, str) else None
        event_id = error.get("event_id")
        pending = None
        if isinstance(event_id, str):
            pending = self._pending.pop(event_id, None) or self._recent.pop(event_id, None)
        request_type = pending.type if pending is not None else None
        kind = classify(code, etype, request_type)
        cls = SessionUpdateRejected if request_type == "session.update" else UpstreamError
        exc = cls(
            str(error.get("message") or "(no message)"),
            code=code,
            type=etype,
            param=error.get("param") if isinstance(error.get("param"), str) else None,
            event_id=event_id if isinstance(event_id, str) else None,
            request_type=request_type,
            kind=kind,
        )
        self.stats.errors[code or etype or "unknown"] += 1
        self.stats.errors_by_kind[kind.value] += 1
        if request_type == "response.create":
            self._response_requested = False
            if code == "conversation_already_has_active_response" and pending is not None:
                # Lost the race with a server-created response: ask again when it is done.
                params = pending.payload.get("response", {}) if pending.payload else {}
                self._held_create = params
                self.stats.held_creates += 1
        elif request_type == "response.cancel" and code == "response_cancel_not_active":
            self._response_id = None
            self._response_requested = False
            self._release_held_create()
        self._events.append(ev.ErrorReceived(error=exc))


def parse_item(raw: Mapping[str, Any]) -> Item:
    """An :class:`Item` from a wire item (GA or beta content part names)."""
    text_parts: list[str] = []
    has_audio = False
    for part in raw.get("content") or ():
        if not isinstance(part, dict):
            continue
        ptype = part.get("type")
        if ptype in ("input_audio", "output_audio", "audio"):
            has_audio = True
            transcript = part.get("transcript")
            if isinstance(transcript, str):
                text_parts.append(transcript)
        elif isinstance(part.get("text"), str):
            text_parts.append(part["text"])
    return Item(
        id=ItemId(str(raw["id"])),
        type=str(raw.get("type") or "message"),
        role=raw.get("role") if isinstance(raw.get("role"), str) else None,
        status=raw.get("status") if isinstance(raw.get("status"), str) else None,
        text="".join(text_parts),
        has_audio=has_audio,
        call_id=CallId(raw["call_id"]) if isinstance(raw.get("call_id"), str) else None,
        name=raw.get("name") if isinstance(raw.get("name"), str) else None,
        arguments=raw.get("arguments") if isinstance(raw.get("arguments"), str) else None,
        output=raw.get("output") if isinstance(raw.get("output"), str) else None,
    )


def played_ms(samples: int, sample_rate: int = 24_000) -> int:
    """Whole milliseconds of ``samples`` at ``sample_rate`` (rounded down)."""
    return samples * 1000 // sample_rate


__all__ = [
    "APPEND",
    "BYTES_PER_MS",
    "ErrorKind",
    "OutboundFrame",
    "ProtocolState",
    "ProtocolStats",
    "RealtimeProtocol",
    "Truncation",
    "parse_item",
    "played_ms",
]
