"""One connection's simulated model: client JSON in, server events out, no I/O, no clock.

``ModelSession`` is a sans-I/O state machine in the style of ``websockets.Protocol``:

- verbs in: ``start()``, ``receive_text()``, ``receive_binary()``, ``expire()``,
  ``send_error()``;
- queues out: ``events_to_send()`` (server events, already in the connection's dialect) and
  ``notes()`` (facts the I/O layer logs or uses as fault checkpoints);
- responses are produced step by step: the I/O layer calls ``next_step()`` when the pacing
  clock says so, and each ``Step`` says how much audio time it carried.

Time is audio time (samples received); wall-clock matters only to the I/O layer (pacing,
think time, expiry).

Choices where the real server is not documented (see also ``settings`` and ``wire``):

- ``speech_stopped.audio_end_ms`` is the end of the last voiced window; the user item holds
  the audio from ``audio_start_ms`` (prefix padding included) to ``audio_end_ms``;
- an out-of-band ``response.create`` (``conversation: "none"`` or ``input``) is refused with
  ``invalid_value``;
- truncation past the end: code ``invalid_value``, param ``audio_end_ms``, message
  ``Audio content of {X}ms is already shorter than {Y}ms``;
- unknown ids: ``item_truncate_invalid_item_id``, ``item_delete_invalid_item_id``,
  ``item_retrieve_invalid_item_id``, ``item_create_invalid_previous_item_id``;
  an existing id on create: ``item_create_duplicate_item_id``;
- invalid JSON and binary frames: ``invalid_json``; ``output_audio_buffer.clear`` (WebRTC
  only) and ``transcription_session.update``: ``invalid_value``;
- usage: input audio tokens are 10/s of all user audio in the conversation, input text tokens
  a quarter of the characters of instructions and text in it, output audio tokens 20/s of
  audio generated, output text tokens one per transcript word; no cached tokens;
- ``idle_timeout_ms`` is accepted and ignored; VAD-created responses while one is active
  get ``conversation_already_has_active_response`` (with a null ``event_id``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from .audio import AudioFormat, convert, decode
from .behaviors import Reply, Speech, ToolCall, Turn, plan_reply, transcript_of
from .config import SimulatorConfig
from .conversation import Conversation, Item, check_client_item, item_from_client, user_audio_item
from .dialect import (
    BETA,
    item_to_ga as beta_item_to_ga,
    response_params_to_ga,
    session_update_to_ga,
    to_beta,
)
from .session_update import (
    Rejection,
    check_max_output_tokens,
    check_modalities,
    check_tool_choice,
    check_tools,
    check_update,
    default_session,
    expect,
    input_format,
    merge,
    missing,
    one_of,
    turn_flag,
    unknown_keys,
    vad_params,
)
from .stats import SimulatorStats
from .vad import EnergyVad, SpeechStarted, VadParams
from .wire import ERRORS, error_event, event_id, expiry_message, known_error, new_id

CLIENT_EVENTS: Final = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)
_RESPONSE_KEYS: Final = frozenset(
    {
        "audio",
        "conversation",
        "input",
        "instructions",
        "max_output_tokens",
        "metadata",
        "output_modalities",
        "prompt",
        "tool_choice",
        "tools",
        "reasoning",
        "parallel_tool_calls",
    }
)
_KEEP_BUFFER_MS: Final = 10_000  # in VAD mode, idle audio beyond this is dropped ...
_KEPT_TAIL_MS: Final = 1_000  # ... down to this much (or the prefix padding, if longer)


# -- notes: facts for the I/O layer -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """A ``session.update`` was applied."""

    instructions: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ItemCreated:
    """A client created an item."""

    item_type: str
    role: str | None


@dataclass(frozen=True, slots=True)
class CallerSpeaking:
    """``speech_started`` was sent."""


@dataclass(frozen=True, slots=True)
class AudioAppended:
    """An append arrived (only noted while nothing else is going on)."""


@dataclass(frozen=True, slots=True)
class ResponseQueued:
    """A response became active; the I/O layer should start pacing it."""

    response_id: str


Note = SessionUpdated | ItemCreated | CallerSpeaking | AudioAppended | ResponseQueued


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a response: ``media_ms`` of audio (or text) time it carried."""

    media_ms: float
    first_audio: bool = False
    done: bool = False


@dataclass(slots=True)
class _Response:
    id: str
    reply: Reply
    modalities: list[str]
    voice: Any
    out_fmt: AudioFormat
    max_output_tokens: int | str
    metadata: Any
    input_tokens: tuple[int, int]  # (text, audio)
    audio: bytes = b""
    word_starts: list[int] = field(default_factory=list)  # byte offsets in ``audio``
    limited: bool = False  # cut short by max_output_tokens
    item: Item | None = None
    part_open: bool = False
    sent: int = 0  # bytes of audio sent
    words_sent: int = 0


class ModelSession:
    """The simulated model behind one WebSocket connection."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        model: str,
        dialect: str,
        now: float,
        stats: SimulatorStats,
    ) -> None:
        self.config = config
        self.dialect = dialect
        self._stats = stats
        self._session = default_session(
            session_id=new_id("sess_"), model=model, expires_at=int(now + config.expire_after_s)
        )
        self._conversation_id = new_id("conv_")
        self._items = Conversation()
        self._out: list[dict[str, Any]] = []
        self._notes: list[Note] = []
        self._tokens_used = 0
        self.audio_produced = False
        self.odd_deltas = False
        """Fault ``odd_deltas``: split samples across deltas and send some empty ones."""
        # input audio
        self._in_fmt = input_format(self._session)
        self._vad_params = vad_params(self._session)
        self._vad: EnergyVad | None = None
        self._buffer = bytearray()
        self._buffer_start = 0  # session sample index of the buffer's first byte
        self._since_commit = 0  # bytes appended since the last commit or clear
        self._samples_in = 0  # whole samples received (since the last change of input rate)
        self._offset_ms = 0.0  # audio time before the last change of input rate
        self._carry = b""  # half a PCM16 sample waiting for its other byte
        self._speech_item: str | None = None
        self._speech_start = 0  # session sample where the speaking user item starts
        self._rebuild_vad()
        # responses
        self._active: _Response | None = None
        self._stream: Generator[Step, None, None] | None = None

    # -- queues out ------------------------------------------------------------------------

    def events_to_send(self) -> list[dict[str, Any]]:
        """Drain the server events produced so far, in order."""
        out, self._out = self._out, []
        return out

    def notes(self) -> list[Note]:
        """Drain the notes produced so far."""
        notes, self._notes = self._notes, []
        return notes

    @property
    def session(self) -> dict[str, Any]:
        """The current session object (GA shape; do not modify)."""
        return self._session

    @property
    def active_response_id(self) -> str | None:
        """The response in progress, if any."""
        return self._active.id if self._active else None

    @property
    def idle(self) -> bool:
        """Nobody is speaking: no response in progress and no speech detected."""
        return self._active is None and self._speech_item is None

    def _emit(self, event: dict[str, Any]) -> None:
        if self.dialect == BETA:
            translated = to_beta(event)
            if translated is None:
                return
            event = translated
        self._out.append(event)

    def _error(
        self,
        code: str | None,
        message: str,
        *,
        param: str | None = None,
        client_event_id: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        self._stats.errors_sent[code or type] += 1
        self._emit(
            error_event(code, message, type=type, param=param, client_event_id=client_event_id)
        )

    def _reject(self, problem: Rejection, client_event_id: str | None) -> None:
        self._error(
            problem.code, problem.message, param=problem.param, client_event_id=client_event_id
        )

    # -- verbs in --------------------------------------------------------------------------

    def start(self) -> None:
        """Queue ``session.created`` (and, in beta, ``conversation.created``)."""
        self._emit({"type": "session.created", "event_id": event_id(), "session": self._session})
        if self.dialect == BETA:
            conversation = {"id": self._conversation_id, "object": "realtime.conversation"}
            self._out.append(
                {
                    "type": "conversation.created",
                    "event_id": event_id(),
                    "conversation": conversation,
                }
            )

    def receive_binary(self, data: bytes) -> None:
        """A binary frame: the API only speaks JSON text frames."""
        del data
        self._error(
            "invalid_json",
            "Binary frames are not supported: send each event as a JSON text frame.",
        )

    def receive_text(self, text: str) -> dict[str, Any] | None:
        """Handle one client frame; returns the parsed event (``None`` if it was not one)."""
        try:
            event = json.loads(text)
        except ValueError:
            self._error(
                "invalid_json",
                "We could not parse the JSON body of your request. The Realtime API expects"
                " each message to be a JSON object.",
            )
            return None
        if not isinstance(event, dict):
            self._error("invalid_type", "Invalid type for event: expected an object.")
            return None
        client_event_id = event.get("event_id")
        if not isinstance(client_event_id, str):
            client_event_id = None
        kind = event.get("type")
        if kind is None:
            self._reject(missing("type"), client_event_id)
            return event
        handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            problem = one_of(kind, CLIENT_EVENTS, "type")
            self._reject(problem or missing("type"), client_event_id)
            return event
        handler(self, event, client_event_id)
        return event

    def expire(self) -> str:
        """Queue the ``session_expired`` error; returns the close reason to use (1001)."""
        message = expiry_message(self.config.expire_after_s)
        self._error("session_expired", message)
        return message

    def send_error(self, code: str) -> int | None:
        """Queue an ``error`` event for ``code`` (fault); returns the close code, if fatal."""
        self._stats.errors_sent[code] += 1
        self._emit(known_error(code))
        info = ERRORS.get(code)
        return info.close_code if info else None

    def next_step(self) -> Step | None:
        """Produce the next step of the active response (``None``: nothing to do)."""
        if self._stream is None:
            return None
        try:
            return next(self._stream)
        except StopIteration:
            return None

    # -- session.update --------------------------------------------------------------------

    def _on_session_update(self, event: dict[str, Any], client_event_id: str | None) -> None:
        if "session" not in event:
            self._reject(missing("session"), client_event_id)
            return
        update: Any = event["session"]
        if self.dialect == BETA:
            converted = session_update_to_ga(update)
            if isinstance(converted, Rejection):
                self._reject(converted, client_event_id)
                return
            update = converted
        problem = check_update(update, current=self._session, audio_produced=self.audio_produced)
        if problem:
            self._reject(problem, client_event_id)
            return
        self._session = merge(self._session, update)
        new_fmt = input_format(self._session)
        if new_fmt is not self._in_fmt:  # a new rate: restart the sample count, keep the time
            self._offset_ms = self._ms(self._samples_in)
            self._samples_in = 0
            self._carry = b""
            self._in_fmt = new_fmt
            self._clear_buffer()
            self._vad_params = vad_params(self._session)
            self._rebuild_vad()
        elif vad_params(self._session) != self._vad_params:
            self._vad_params = vad_params(self._session)
            self._rebuild_vad()
        self._stats.session_updates += 1
        self._emit({"type": "session.updated", "event_id": event_id(), "session": self._session})
        keys = tuple(k for k in update if k != "type")
        self._notes.append(SessionUpdated(str(self._session["instructions"]), keys))

    # -- input audio -----------------------------------------------------------------------

    def _rebuild_vad(self) -> None:
        params: VadParams | None = self._vad_params
        self._vad = (
            None
            if params is None
            else EnergyVad(params, self._in_fmt.sample_rate, first_sample=self._samples_in)
        )
        self._speech_item = None

    def _clear_buffer(self) -> None:
        self._buffer = bytearray(self._carry)  # a pending half sample stays aligned
        self._buffer_start = self._samples_in
        self._since_commit = 0
        self._speech_item = None
        if self._vad is not None:
            self._vad.reset()

    def _ms(self, samples: float) -> float:
        """Session audio time (ms) at sample index ``samples`` of the current input format."""
        return self._offset_ms + samples * 1000.0 / self._in_fmt.sample_rate

    def _on_append(self, event: dict[str, Any], client_event_id: str | None) -> None:
        audio = event.get("audio")
        if audio is None:
            self._reject(missing("audio"), client_event_id)
            return
        problem = expect(audio, "string", "audio")
        if problem:
            self._reject(problem, client_event_id)
            return
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            self._error(
                "invalid_value",
                "Invalid 'audio': expected base64-encoded audio bytes.",
                param="audio",
                client_event_id=client_event_id,
            )
            return
        fmt = self._in_fmt
        self._stats.appends += 1
        self._stats.audio_in_ms += len(data) / fmt.bytes_per_ms
        was_idle = self.idle
        self._buffer += data
        self._since_commit += len(data)
        whole = self._carry + data if self._carry else data
        usable = len(whole) - (len(whole) % fmt.sample_width)
        self._carry = whole[usable:]
        if self._vad is not None:
            samples = decode(whole[:usable], fmt)
            for vad_event in self._vad.push(samples):
                if isinstance(vad_event, SpeechStarted):
                    self._on_speech_started(vad_event.sample)
                else:
                    self._on_speech_stopped(vad_event.sample)
        self._samples_in += usable // fmt.sample_width
        if self._vad is not None and not self._vad.speaking:
            self._trim_idle_buffer()
        if was_idle and self.idle:
            self._notes.append(AudioAppended())

    def _trim_idle_buffer(self) -> None:
        width = self._in_fmt.sample_width
        if len(self._buffer) <= _KEEP_BUFFER_MS * self._in_fmt.bytes_per_ms:
            return
        padding_ms = self._vad_params.prefix_padding_ms if self._vad_params else 0
        keep_samples = self._in_fmt.sample_rate * max(_KEPT_TAIL_MS, padding_ms + 100) // 1000
        drop_samples = max(0, len(self._buffer) // width - keep_samples)
        del self._buffer[: drop_samples * width]
        self._buffer_start += drop_samples

    def _on_speech_started(self, sample: int) -> None:
        assert self._vad_params is not None
        onset_ms = self._ms(sample)
        start_ms = max(self._ms(self._buffer_start), onset_ms - self._vad_params.prefix_padding_ms)
        start_ms = max(0.0, start_ms)
        start_sample = round((start_ms - self._offset_ms) * self._in_fmt.sample_rate / 1000.0)
        self._speech_start = max(self._buffer_start, start_sample)
        self._speech_item = new_id("item_")
        self._stats.speech_turns += 1
        self._emit(
            {
                "type": "input_audio_buffer.speech_started",
                "event_id": event_id(),
                "audio_start_ms": int(round(self._ms(self._speech_start))),
                "item_id": self._speech_item,
            }
        )
        self._notes.append(CallerSpeaking())
        if self._active is not None and turn_flag(self._session, "interrupt_response"):
            self._cancel("turn_detected")

    def _on_speech_stopped(self, sample: int) -> None:
        item_id = self._speech_item or new_id("item_")
        width = self._in_fmt.sample_width
        self._emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "event_id": event_id(),
                "audio_end_ms": int(round(self._ms(sample))),
                "item_id": item_id,
            }
        )
        start = (self._speech_start - self._buffer_start) * width
        end = (sample - self._buffer_start) * width
        audio = bytes(self._buffer[start:end])
        del self._buffer[:end]
        self._buffer_start = sample
        self._since_commit = len(self._buffer)
        self._speech_item = None
        self._commit(audio, item_id)
        if turn_flag(self._session, "create_response"):
            self._create_response({}, client_event_id=None)

    def _on_commit(self, event: dict[str, Any], client_event_id: str | None) -> None:
        del event
        have_ms = self._since_commit / self._in_fmt.bytes_per_ms
        if have_ms < 100.0:
            self._error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least"
                f" 100ms of audio, but buffer only has {have_ms:.2f}ms of audio.",
                client_event_id=client_event_id,
            )
            return
        item_id = self._speech_item or new_id("item_")
        audio = bytes(self._buffer)
        self._clear_buffer()
        self._commit(audio, item_id)

    def _on_clear(self, event: dict[str, Any], client_event_id: str | None) -> None:
        del event, client_event_id
        self._clear_buffer()
        self._emit({"type": "input_audio_buffer.cleared", "event_id": event_id()})

    def _commit(self, audio: bytes, item_id: str) -> None:
        previous = self._items.last_id()
        item = user_audio_item(item_id, audio, self._in_fmt)
        self._items.insert(item)
        self._stats.commits += 1
        self._emit(
            {
                "type": "input_audio_buffer.committed",
                "event_id": event_id(),
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        for kind in ("conversation.item.added", "conversation.item.done"):
            self._emit(
                {
                    "type": kind,
                    "event_id": event_id(),
                    "previous_item_id": previous,
                    "item": item.wire(),
                }
            )
        transcription = self._session["audio"]["input"]["transcription"]
        if transcription is not None:
            self._transcribe(item, str(transcription.get("model") or ""))

    def _threshold(self) -> float:
        return self._vad_params.threshold if self._vad_params else 0.5

    def _transcribe(self, item: Item, asr_model: str) -> None:
        transcript = transcript_of(item.audio, item.fmt, self._threshold())
        words = transcript.split()
        for index, word in enumerate(words):
            self._emit(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "event_id": event_id(),
                    "item_id": item.id,
                    "content_index": 0,
                    "delta": word if index == 0 else " " + word,
                }
            )
        seconds = item.audio_ms / 1000.0
        usage: dict[str, Any]
        if asr_model == "whisper-1":
            usage = {"type": "duration", "seconds": round(seconds, 3)}
        else:
            audio_tokens = math.ceil(seconds * 10)
            usage = {
                "type": "tokens",
                "input_tokens": audio_tokens,
                "output_tokens": len(words),
                "total_tokens": audio_tokens + len(words),
                "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
            }
        self._emit(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": event_id(),
                "item_id": item.id,
                "content_index": 0,
                "transcript": transcript,
                "usage": usage,
            }
        )
        item.data["content"][0]["transcript"] = transcript

    # -- conversation items ----------------------------------------------------------------

    def _on_item_create(self, event: dict[str, Any], client_event_id: str | None) -> None:
        if "item" not in event:
            self._reject(missing("item"), client_event_id)
            return
        raw = event["item"]
        if self.dialect == BETA:
            raw = beta_item_to_ga(raw)
        problem = check_client_item(raw)
        if problem is None and raw.get("id") and self._items.get(raw["id"]) is not None:
            problem = Rejection(
                "item_create_duplicate_item_id",
                f"Item with item_id already exists: {raw['id']}",
                "item.id",
            )
        previous = event.get("previous_item_id")
        if problem is None and previous not in (None, "root") and self._items.get(previous) is None:
            problem = Rejection(
                "item_create_invalid_previous_item_id",
                f"Previous item with item_id not found: {previous}",
                "previous_item_id",
            )
        if problem:
            self._reject(problem, client_event_id)
            return
        stored = item_from_client(raw, self._in_fmt)
        if isinstance(stored, Rejection):
            self._reject(stored, client_event_id)
            return
        self._items.insert(
            stored, None if previous == "root" else previous, at_root=previous == "root"
        )
        after = self._items.previous_id(stored)
        for kind in ("conversation.item.added", "conversation.item.done"):
            self._emit(
                {
                    "type": kind,
                    "event_id": event_id(),
                    "previous_item_id": after,
                    "item": stored.wire(),
                }
            )
        self._stats.items_created[stored.data["type"]] += 1
        self._notes.append(ItemCreated(stored.data["type"], stored.data.get("role")))

    def _find_item(
        self, event: dict[str, Any], verb: str, client_event_id: str | None
    ) -> Item | None:
        item_id = event.get("item_id")
        if item_id is None:
            self._reject(missing("item_id"), client_event_id)
            return None
        problem = expect(item_id, "string", "item_id")
        if problem:
            self._reject(problem, client_event_id)
            return None
        item = self._items.get(item_id)
        if item is None:
            self._error(
                f"item_{verb}_invalid_item_id",
                f"Item with item_id not found: {item_id}",
                param="item_id",
                client_event_id=client_event_id,
            )
        return item

    def _on_item_delete(self, event: dict[str, Any], client_event_id: str | None) -> None:
        item = self._find_item(event, "delete", client_event_id)
        if item is None:
            return
        self._items.delete(item.id)
        self._emit(
            {"type": "conversation.item.deleted", "event_id": event_id(), "item_id": item.id}
        )

    def _on_item_retrieve(self, event: dict[str, Any], client_event_id: str | None) -> None:
        item = self._find_item(event, "retrieve", client_event_id)
        if item is None:
            return
        self._emit(
            {
                "type": "conversation.item.retrieved",
                "event_id": event_id(),
                "item": item.wire(with_audio=True),
            }
        )

    def _on_item_truncate(self, event: dict[str, Any], client_event_id: str | None) -> None:
        for name in ("content_index", "audio_end_ms"):
            if name not in event:
                self._reject(missing(name), client_event_id)
                return
            problem = expect(event[name], "integer", name)
            if problem:
                self._reject(problem, client_event_id)
                return
        end_ms: int = event["audio_end_ms"]
        if end_ms < 0:
            self._error(
                "integer_below_min_value",
                "Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0,"
                f" but got {end_ms} instead.",
                param="audio_end_ms",
                client_event_id=client_event_id,
            )
            return
        item = self._find_item(event, "truncate", client_event_id)
        if item is None:
            return
        data = item.data
        if (
            data.get("role") != "assistant"
            or item.audio_index is None
            or (not item.audio and not item.truncated)
        ):
            self._error(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                client_event_id=client_event_id,
            )
            return
        if event["content_index"] != item.audio_index:
            self._error(
                "invalid_value",
                f"Invalid value: {event['content_index']}. Item {item.id} has audio at"
                f" content_index {item.audio_index}.",
                param="content_index",
                client_event_id=client_event_id,
            )
            return
        if end_ms > item.audio_ms:
            have_ms = math.floor(item.audio_ms)
            self._error(
                "invalid_value",
                f"Audio content of {have_ms}ms is already shorter than {end_ms}ms",
                param="audio_end_ms",
                client_event_id=client_event_id,
            )
            return
        fmt = item.fmt
        keep = end_ms * fmt.sample_rate // 1000 * fmt.sample_width
        item.audio = item.audio[:keep]
        item.truncated = True
        part = data["content"][item.audio_index]
        words = (part.get("transcript") or "").split()
        kept = [w for w, start in zip(words, item.word_starts_ms, strict=False) if start < end_ms]
        part["transcript"] = " ".join(kept)
        item.word_starts_ms = item.word_starts_ms[: len(kept)]
        self._stats.truncations += 1
        self._emit(
            {
                "type": "conversation.item.truncated",
                "event_id": event_id(),
                "item_id": item.id,
                "content_index": item.audio_index,
                "audio_end_ms": end_ms,
            }
        )

    # -- responses -------------------------------------------------------------------------

    def _on_response_create(self, event: dict[str, Any], client_event_id: str | None) -> None:
        params = event.get("response")
        if params is None:
            params = {}
        problem = expect(params, "object", "response")
        if problem:
            self._reject(problem, client_event_id)
            return
        if self.dialect == BETA:
            params = response_params_to_ga(params)
        params = {k: v for k, v in params.items() if v is not None}
        problem = self._check_response_params(params)
        if problem:
            self._reject(problem, client_event_id)
            return
        self._create_response(params, client_event_id=client_event_id)

    def _check_response_params(self, params: dict[str, Any]) -> Rejection | None:
        problem = unknown_keys(params, _RESPONSE_KEYS, "response")
        if problem:
            return problem
        if params.get("conversation", "auto") != "auto" or "input" in params:
            return Rejection(
                "invalid_value",
                "The simulator does not support out-of-band responses"
                " (response.conversation 'none' or response.input).",
                "response.conversation",
            )
        if "output_modalities" in params and (
            problem := check_modalities(params["output_modalities"], "response.output_modalities")
        ):
            return problem
        if "instructions" in params and (
            problem := expect(params["instructions"], "string", "response.instructions")
        ):
            return problem
        if "max_output_tokens" in params and (
            problem := check_max_output_tokens(
                params["max_output_tokens"], "response.max_output_tokens"
            )
        ):
            return problem
        if "tools" in params and (problem := check_tools(params["tools"], "response.tools")):
            return problem
        if "tool_choice" in params and (
            problem := check_tool_choice(params["tool_choice"], "response.tool_choice")
        ):
            return problem
        metadata = params.get("metadata")
        if metadata is not None:
            problem = expect(metadata, "object", "response.metadata")
            if problem is None and len(metadata) > 16:
                problem = Rejection(
                    "invalid_value",
                    "Invalid 'response.metadata': at most 16 pairs.",
                    "response.metadata",
                )
            if problem:
                return problem
        audio = params.get("audio")
        if audio is not None:
            problem = expect(audio, "object", "response.audio") or unknown_keys(
                audio, frozenset({"output"}), "response.audio"
            )
            output = audio.get("output", {}) if problem is None else {}
            problem = problem or expect(output, "object", "response.audio.output")
            if problem is None:
                problem = unknown_keys(
                    output, frozenset({"format", "voice"}), "response.audio.output"
                )
            if problem:
                return problem
        return None

    def _latest_turn(self) -> Turn:
        answered = False
        for item in reversed(self._items):
            data = item.data
            kind = data["type"]
            if kind == "function_call":
                if data.get("status") == "completed" and not self._has_output(data["call_id"]):
                    return Turn("pending_call")
                answered = True
            elif kind == "function_call_output":
                return Turn("tool_output", text=str(data["output"]))
            elif kind == "message" and data["role"] == "user":
                number = sum(1 for i in self._items if _is_user_message(i.data))
                if item.audio_index is not None:
                    transcript = data["content"][item.audio_index].get("transcript")
                    return Turn(
                        "audio",
                        audio=item.audio,
                        fmt=item.fmt,
                        transcript=transcript,
                        answered_by_call=answered,
                        number=number,
                    )
                texts = [
                    p.get("text", "") for p in data["content"] if p.get("type") == "input_text"
                ]
                return Turn("text", text=" ".join(texts), answered_by_call=answered, number=number)
        return Turn("none")

    def _has_output(self, call_id: str) -> bool:
        return any(
            item.data["type"] == "function_call_output" and item.data.get("call_id") == call_id
            for item in self._items
        )

    def _context_tokens(self) -> tuple[int, int]:
        text_chars = len(self._session["instructions"] or "")
        audio_ms = 0.0
        for item in self._items:
            data = item.data
            if data["type"] == "message":
                if data["role"] == "user" and item.audio_index is not None:
                    audio_ms += item.audio_ms
                for part in data["content"]:
                    text_chars += len(part.get("text") or "")
                    if data["role"] == "assistant":
                        text_chars += len(part.get("transcript") or "")
            else:
                text_chars += len(data.get("arguments") or data.get("output") or "")
        return math.ceil(text_chars / 4), math.floor(audio_ms / 100.0 + 0.5)

    def _create_response(self, params: dict[str, Any], *, client_event_id: str | None) -> None:
        if self._active is not None:
            self._error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress:"
                f" {self._active.id}. Wait until the response is finished before creating a"
                " new one.",
                client_event_id=client_event_id,
            )
            return
        session = self._session
        audio_out = dict(session["audio"]["output"])
        audio_out.update(params.get("audio", {}).get("output", {}))
        fmt_obj = audio_out.get("format") or session["audio"]["output"]["format"]
        out_fmt = AudioFormat(fmt_obj.get("type", AudioFormat.PCM.value))
        reply = plan_reply(
            self.config.behavior,
            self._latest_turn(),
            tools=params.get("tools", session["tools"]),
            tool_choice=params.get("tool_choice", session["tool_choice"]),
            threshold=self._threshold(),
            tool_from_turn=self.config.tool_from_turn,
        )
        response = _Response(
            id=new_id("resp_"),
            reply=reply,
            modalities=list(params.get("output_modalities", session["output_modalities"])),
            voice=audio_out["voice"],
            out_fmt=out_fmt,
            max_output_tokens=params.get("max_output_tokens", session["max_output_tokens"]),
            metadata=params.get("metadata"),
            input_tokens=self._context_tokens(),
        )
        if isinstance(reply, Speech):
            self._prepare_speech(response, reply)
        self._active = response
        self._stream = self._steps(response)
        self._stats.responses += 1
        self._emit(
            {
                "type": "response.created",
                "event_id": event_id(),
                "response": self._response_object(response, "in_progress", None, None),
            }
        )
        self._notes.append(ResponseQueued(response.id))

    def _prepare_speech(self, response: _Response, speech: Speech) -> None:
        fmt = response.out_fmt
        audio = convert(speech.audio, speech.fmt, fmt)
        samples = len(audio) // fmt.sample_width
        words = len(speech.words)
        response.word_starts = [(k * samples // words) * fmt.sample_width for k in range(words)]
        limit = response.max_output_tokens
        if "audio" in response.modalities and isinstance(limit, int):
            # 20 output audio tokens per second: a token is 50 ms of audio.
            max_bytes = limit * 50 * fmt.bytes_per_ms
            if len(audio) > max_bytes:
                audio = audio[:max_bytes]
                response.limited = True
        response.audio = audio

    def _response_object(
        self, response: _Response, status: str, details: Any, usage: Any
    ) -> dict[str, Any]:
        fmt_obj: dict[str, Any] = {"type": response.out_fmt.value}
        if response.out_fmt is AudioFormat.PCM:
            fmt_obj["rate"] = 24_000
        output = []
        if response.item is not None and status != "in_progress":
            output.append(response.item.wire())
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": output,
            "conversation_id": self._conversation_id,
            "output_modalities": response.modalities,
            "max_output_tokens": response.max_output_tokens,
            "audio": {"output": {"format": fmt_obj, "voice": response.voice}},
            "usage": usage,
            "metadata": response.metadata,
        }

    def _part_fields(self, response: _Response) -> dict[str, Any]:
        assert response.item is not None
        return {
            "response_id": response.id,
            "item_id": response.item.id,
            "output_index": 0,
            "content_index": 0,
        }

    def _steps(self, response: _Response) -> Generator[Step, None, None]:
        reply = response.reply
        if isinstance(reply, ToolCall):
            yield from self._tool_steps(response, reply)
            return
        audio_mode = "audio" in response.modalities
        item = Item(
            {
                "id": new_id("item_"),
                "type": "message",
                "object": "realtime.item",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
            fmt=response.out_fmt,
        )
        response.item = item
        self._add_output_item(response)
        part = {"type": "audio", "transcript": ""} if audio_mode else {"type": "text", "text": ""}
        self._emit(
            {
                "type": "response.content_part.added",
                "event_id": event_id(),
                **self._part_fields(response),
                "part": part,
            }
        )
        response.part_open = True
        if audio_mode:
            item.audio_index = 0
            item.data["content"] = [{"type": "output_audio", "transcript": ""}]
            yield Step(0.0)
            yield from self._audio_steps(response, reply)
        else:
            item.data["content"] = [{"type": "output_text", "text": ""}]
            yield Step(0.0)
            yield from self._text_steps(response, reply)
        status = "incomplete" if response.limited else "completed"
        details = (
            {"type": "incomplete", "reason": "max_output_tokens"} if response.limited else None
        )
        self._finish(response, status, details)
        yield Step(0.0, done=True)

    def _add_output_item(self, response: _Response) -> None:
        assert response.item is not None
        previous = self._items.last_id()
        self._items.insert(response.item)
        self._emit(
            {
                "type": "response.output_item.added",
                "event_id": event_id(),
                "response_id": response.id,
                "output_index": 0,
                "item": response.item.wire(),
            }
        )
        self._emit(
            {
                "type": "conversation.item.added",
                "event_id": event_id(),
                "previous_item_id": previous,
                "item": response.item.wire(),
            }
        )

    def _say_word(self, response: _Response, speech: Speech, delta_type: str) -> None:
        assert response.item is not None
        index = response.words_sent
        word = speech.words[index]
        delta = word if index == 0 else " " + word
        response.words_sent += 1
        self._emit(
            {
                "type": delta_type,
                "event_id": event_id(),
                **self._part_fields(response),
                "delta": delta,
            }
        )
        if not response.item.truncated:
            part = response.item.data["content"][0]
            key = "transcript" if "transcript" in part else "text"
            part[key] += delta

    def _audio_steps(self, response: _Response, speech: Speech) -> Iterator[Step]:
        assert response.item is not None
        item = response.item
        fmt = response.out_fmt
        audio = response.audio
        size = self.config.delta_ms * fmt.bytes_per_ms
        index = 0
        while response.sent < len(audio):
            chunk_size = size
            if self.odd_deltas:  # odd byte counts: PCM16 samples split across deltas
                chunk_size = size + 1 if index % 2 == 0 else max(1, size - 1)
            start = response.sent
            chunk = audio[start : start + chunk_size]
            end = start + len(chunk)
            while (
                response.words_sent < len(speech.words)
                and response.word_starts[response.words_sent] < end
            ):
                if not item.truncated:
                    item.word_starts_ms.append(
                        response.word_starts[response.words_sent] / fmt.bytes_per_ms
                    )
                self._say_word(response, speech, "response.output_audio_transcript.delta")
            self._emit(
                {
                    "type": "response.output_audio.delta",
                    "event_id": event_id(),
                    **self._part_fields(response),
                    "delta": base64.b64encode(chunk).decode(),
                }
            )
            if self.odd_deltas and index % 4 == 3:
                self._emit(
                    {
                        "type": "response.output_audio.delta",
                        "event_id": event_id(),
                        **self._part_fields(response),
                        "delta": "",
                    }
                )
            response.sent = end
            if not item.truncated:
                item.audio = audio[:end]
            self.audio_produced = True
            media_ms = len(chunk) / fmt.bytes_per_ms
            self._stats.audio_out_ms += media_ms
            index += 1
            yield Step(media_ms, first_audio=index == 1)

    def _text_steps(self, response: _Response, speech: Speech) -> Iterator[Step]:
        word_ms = speech.duration_ms / max(1, len(speech.words))
        while response.words_sent < len(speech.words):
            self._say_word(response, speech, "response.output_text.delta")
            yield Step(word_ms)

    def _tool_steps(self, response: _Response, call: ToolCall) -> Iterator[Step]:
        item = Item(
            {
                "id": new_id("item_"),
                "type": "function_call",
                "object": "realtime.item",
                "status": "in_progress",
                "call_id": new_id("call_"),
                "name": call.name,
                "arguments": "",
            }
        )
        response.item = item
        self._add_output_item(response)
        yield Step(0.0)
        args = call.arguments
        third = max(1, math.ceil(len(args) / 3))
        fields = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": 0,
            "call_id": item.data["call_id"],
        }
        for start in range(0, len(args), third):
            delta = args[start : start + third]
            item.data["arguments"] += delta
            self._emit(
                {
                    "type": "response.function_call_arguments.delta",
                    "event_id": event_id(),
                    **fields,
                    "delta": delta,
                }
            )
            yield Step(0.0)
        self._emit(
            {
                "type": "response.function_call_arguments.done",
                "event_id": event_id(),
                **fields,
                "name": call.name,
                "arguments": args,
            }
        )
        self._finish(response, "completed", None)
        yield Step(0.0, done=True)

    def _usage(self, response: _Response) -> dict[str, Any]:
        in_text, in_audio = response.input_tokens
        out_audio = 0
        out_text = response.words_sent
        if isinstance(response.reply, ToolCall) and response.item is not None:
            out_text = math.ceil(len(response.item.data.get("arguments", "")) / 4)
        elif "audio" in response.modalities:
            out_audio = math.floor(response.sent / response.out_fmt.bytes_per_ms / 50.0 + 0.5)
        inputs = in_text + in_audio
        outputs = out_text + out_audio
        return {
            "total_tokens": inputs + outputs,
            "input_tokens": inputs,
            "output_tokens": outputs,
            "input_token_details": {
                "text_tokens": in_text,
                "audio_tokens": in_audio,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

    def _finish(self, response: _Response, status: str, details: Any) -> None:
        item = response.item
        if item is not None:
            data = item.data
            if data["type"] == "message" and response.part_open:
                fields = self._part_fields(response)
                part = dict(data["content"][0])
                if part["type"] == "output_audio":
                    transcript = part.get("transcript") or ""
                    self._emit(
                        {"type": "response.output_audio.done", "event_id": event_id(), **fields}
                    )
                    self._emit(
                        {
                            "type": "response.output_audio_transcript.done",
                            "event_id": event_id(),
                            **fields,
                            "transcript": transcript,
                        }
                    )
                    done_part = {"type": "audio", "transcript": transcript}
                else:
                    text = part.get("text") or ""
                    self._emit(
                        {
                            "type": "response.output_text.done",
                            "event_id": event_id(),
                            **fields,
                            "text": text,
                        }
                    )
                    done_part = {"type": "text", "text": text}
                self._emit(
                    {
                        "type": "response.content_part.done",
                        "event_id": event_id(),
                        **fields,
                        "part": done_part,
                    }
                )
                response.part_open = False
            data["status"] = "completed" if status == "completed" else "incomplete"
            self._emit(
                {
                    "type": "response.output_item.done",
                    "event_id": event_id(),
                    "response_id": response.id,
                    "output_index": 0,
                    "item": item.wire(),
                }
            )
            if self._items.get(item.id) is item:
                self._emit(
                    {
                        "type": "conversation.item.done",
                        "event_id": event_id(),
                        "previous_item_id": self._items.previous_id(item),
                        "item": item.wire(),
                    }
                )
        usage = self._usage(response)
        self._emit(
            {
                "type": "response.done",
                "event_id": event_id(),
                "response": self._response_object(response, status, details, usage),
            }
        )
        self._tokens_used += usage["total_tokens"]
        limit = self.config.rate_limit_tokens
        used = min(self._tokens_used, limit)
        self._emit(
            {
                "type": "rate_limits.updated",
                "event_id": event_id(),
                "rate_limits": [
                    {
                        "name": "tokens",
                        "limit": limit,
                        "remaining": limit - used,
                        "reset_seconds": round(60.0 * used / limit, 3),
                    }
                ],
            }
        )
        self._stats.responses_done[status] += 1
        self._active = None
        self._stream = None

    def _cancel(self, reason: str) -> None:
        response = self._active
        if response is None:
            return
        if self._stream is not None:
            self._stream.close()
        self._stats.cancellations[reason] += 1
        self._finish(response, "cancelled", {"type": "cancelled", "reason": reason})

    def _on_response_cancel(self, event: dict[str, Any], client_event_id: str | None) -> None:
        wanted = event.get("response_id")
        if self._active is None or (wanted is not None and wanted != self._active.id):
            self._error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                client_event_id=client_event_id,
            )
            return
        self._cancel("client_cancelled")

    def _on_webrtc_only(self, event: dict[str, Any], client_event_id: str | None) -> None:
        self._error(
            "invalid_value",
            f"Invalid value: '{event['type']}'. This event is not supported in a realtime"
            " session over WebSocket.",
            param="type",
            client_event_id=client_event_id,
        )

    _HANDLERS: Final[dict[str, Any]] = {
        "session.update": _on_session_update,
        "input_audio_buffer.append": _on_append,
        "input_audio_buffer.commit": _on_commit,
        "input_audio_buffer.clear": _on_clear,
        "conversation.item.create": _on_item_create,
        "conversation.item.truncate": _on_item_truncate,
        "conversation.item.delete": _on_item_delete,
        "conversation.item.retrieve": _on_item_retrieve,
        "response.create": _on_response_create,
        "response.cancel": _on_response_cancel,
        "output_audio_buffer.clear": _on_webrtc_only,
        "transcription_session.update": _on_webrtc_only,
    }


def _is_user_message(data: dict[str, Any]) -> bool:
    return bool(data["type"] == "message" and data["role"] == "user")
