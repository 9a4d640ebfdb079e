"""The conversation so far, as ``conversation.item.create`` payloads for a new socket.

A new socket knows nothing; the supervisor configures it with the same
``session.update`` and then replays, in order:

- user turns as text when a transcript or typed text exists, otherwise as the caller's own
  audio (``input_audio``), most recent first within ``max_audio_s`` (older audio-only turns
  are dropped and counted);
- assistant turns as text, truncations respected: the text the listener actually heard;
- function calls and their outputs, so the model remembers what its tools said;
- system messages.

Items keep their ids, so the client's conversation mirror stays valid on the new socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pybase64 import b64encode

from sessions.conversation import Conversation, ItemRecord
from sessions.endpoint import Dialect

SAMPLE_RATE = 24_000
AudioLookup = Callable[[str], NDArray[np.int16] | None]


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    items: list[dict[str, Any]]
    audio_items: int
    audio_seconds: float
    dropped_audio_items: int


def plan_replay(
    conversation: Conversation,
    *,
    dialect: Dialect,
    user_audio: AudioLookup,
    max_audio_s: float = 30.0,
) -> ReplayPlan:
    records = list(conversation)
    budget = int(max_audio_s * SAMPLE_RATE)
    audio_for: dict[str, NDArray[np.int16]] = {}
    dropped = 0
    for record in reversed(records):  # the most recent audio-only turns matter most
        if _is_user(record) and not record.text:
            audio = user_audio(record.id)
            if audio is None or not audio.size:
                continue
            if audio.size <= budget:
                audio_for[record.id] = audio
                budget -= audio.size
            else:
                dropped += 1
    items: list[dict[str, Any]] = []
    for record in records:
        item = _payload(record, dialect, audio_for.get(record.id))
        if item is not None:
            items.append(item)
    seconds = sum(a.size for a in audio_for.values()) / SAMPLE_RATE
    return ReplayPlan(items, len(audio_for), seconds, dropped)


def _is_user(record: ItemRecord) -> bool:
    return record.type == "message" and record.role == "user"


def _payload(
    record: ItemRecord, dialect: Dialect, audio: NDArray[np.int16] | None
) -> dict[str, Any] | None:
    base: dict[str, Any] = {"id": record.id}
    if record.type == "function_call" and record.call_id and record.name is not None:
        return {
            **base,
            "type": "function_call",
            "call_id": record.call_id,
            "name": record.name,
            "arguments": record.arguments or "{}",
        }
    if record.type == "function_call_output" and record.call_id:
        return {
            **base,
            "type": "function_call_output",
            "call_id": record.call_id,
            "output": record.output or "",
        }
    if record.type != "message":
        return None
    if record.role == "assistant":
        text = record.replay_text.strip()
        if not text:
            return None  # nothing of it was heard
        part_type = "output_text" if dialect is Dialect.GA else "text"
        return {
            **base,
            "type": "message",
            "role": "assistant",
            "content": [{"type": part_type, "text": text}],
        }
    if record.role in ("user", "system"):
        if record.text:
            return {
                **base,
                "type": "message",
                "role": record.role,
                "content": [{"type": "input_text", "text": record.text}],
            }
        if audio is not None and record.role == "user":
            return {
                **base,
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_audio", "audio": b64encode(audio.tobytes()).decode("ascii")}
                ],
            }
    return None
