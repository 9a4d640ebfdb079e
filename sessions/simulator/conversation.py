"""The conversation: ordered items with their audio, and items clients ask to create.

Items are kept in GA wire shape (``data``) without audio bytes; the audio of the one audio
content part an item may have is kept beside it, in the session's format, so that
``conversation.item.retrieve`` can return it and truncation can cut it.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from .audio import AudioFormat
from .session_update import Rejection, expect, missing, one_of, unknown_keys
from .wire import new_id

_COMMON: Final = frozenset({"id", "type", "object", "status"})
_ITEM_KEYS: Final = {
    "message": _COMMON | {"role", "content"},
    "function_call": _COMMON | {"call_id", "name", "arguments"},
    "function_call_output": _COMMON | {"call_id", "output"},
}
_PART_KEYS: Final = {
    "input_text": frozenset({"type", "text"}),
    "input_audio": frozenset({"type", "audio", "transcript"}),
    "input_image": frozenset({"type", "image_url", "detail", "file_id"}),
    "output_text": frozenset({"type", "text"}),
}
_PARTS_BY_ROLE: Final = {
    "user": ["input_text", "input_audio", "input_image"],
    "system": ["input_text"],
    "assistant": ["output_text"],
}


@dataclass(slots=True)
class Item:
    """One conversation item."""

    data: dict[str, Any]
    """GA wire shape, without audio bytes."""
    audio: bytes = b""
    fmt: AudioFormat = AudioFormat.PCM
    audio_index: int | None = None
    """Content index of the audio part, if the item has one."""
    word_starts_ms: list[float] = field(default_factory=list)
    """Assistant audio: where each transcript word starts (for truncation)."""
    truncated: bool = False

    @property
    def id(self) -> str:
        """The item id."""
        return str(self.data["id"])

    @property
    def audio_ms(self) -> float:
        """Length of the item's audio."""
        return len(self.audio) / self.fmt.bytes_per_ms

    def wire(self, *, with_audio: bool = False) -> dict[str, Any]:
        """The item as sent: a copy; with its audio (base64) only when asked."""
        out = copy.deepcopy(self.data)
        if with_audio and self.audio_index is not None:
            out["content"][self.audio_index]["audio"] = base64.b64encode(self.audio).decode()
        return out


class Conversation:
    """Items in order, by id."""

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._by_id: dict[str, Item] = {}

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __reversed__(self) -> Iterator[Item]:
        return reversed(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, item_id: str) -> Item | None:
        """The item with this id, if it is in the conversation."""
        return self._by_id.get(item_id)

    def last_id(self) -> str | None:
        """Id of the last item (``None`` when empty)."""
        return self._items[-1].id if self._items else None

    def previous_id(self, item: Item) -> str | None:
        """Id of the item before ``item``."""
        index = self._items.index(item)
        return self._items[index - 1].id if index else None

    def insert(self, item: Item, after: str | None = None, *, at_root: bool = False) -> None:
        """Append ``item``, or put it first (``at_root``) or after the item ``after``."""
        if at_root:
            self._items.insert(0, item)
        elif after is None:
            self._items.append(item)
        else:
            self._items.insert(self._items.index(self._by_id[after]) + 1, item)
        self._by_id[item.id] = item

    def delete(self, item_id: str) -> None:
        """Remove an item (it must be present)."""
        item = self._by_id.pop(item_id)
        self._items.remove(item)


def user_audio_item(item_id: str, audio: bytes, fmt: AudioFormat) -> Item:
    """The item a commit creates: a user message with one ``input_audio`` part."""
    data = {
        "id": item_id,
        "type": "message",
        "object": "realtime.item",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    return Item(data, audio=audio, fmt=fmt, audio_index=0)


def _check_part(part: Any, role: str, path: str) -> Rejection | None:
    problem = expect(part, "object", path)
    if problem:
        return problem
    if "type" not in part:
        return missing(f"{path}.type")
    kind = part["type"]
    if role == "assistant" and kind == "output_audio":
        return Rejection(
            "invalid_value",
            "Invalid value: 'output_audio'. Assistant messages can only be created with"
            " 'output_text' content.",
            f"{path}.type",
        )
    problem = one_of(kind, _PARTS_BY_ROLE[role], f"{path}.type") or unknown_keys(
        part, _PART_KEYS[kind], path
    )
    if problem:
        return problem
    if kind in ("input_text", "output_text"):
        if "text" not in part:
            return missing(f"{path}.text")
        return expect(part["text"], "string", f"{path}.text")
    if kind == "input_audio":
        if "audio" not in part:
            return missing(f"{path}.audio")
        problem = expect(part["audio"], "string", f"{path}.audio")
        if problem is None and part.get("transcript") is not None:
            problem = expect(part["transcript"], "string", f"{path}.transcript")
        return problem
    if "image_url" not in part and "file_id" not in part:
        return missing(f"{path}.image_url")
    return None


def check_client_item(item: Any) -> Rejection | None:
    """What is wrong with an item in ``conversation.item.create`` (first problem only)."""
    path = "item"
    problem = expect(item, "object", path)
    if problem:
        return problem
    if "type" not in item:
        return missing("item.type")
    kind = item["type"]
    problem = one_of(kind, list(_ITEM_KEYS), "item.type") or unknown_keys(
        item, _ITEM_KEYS[kind], path
    )
    if problem:
        return problem
    if (
        "id" in item
        and item["id"] is not None
        and (problem := expect(item["id"], "string", "item.id"))
    ):
        return problem
    if kind == "message":
        if "role" not in item:
            return missing("item.role")
        problem = one_of(item["role"], list(_PARTS_BY_ROLE), "item.role")
        if problem:
            return problem
        if "content" not in item:
            return missing("item.content")
        problem = expect(item["content"], "array", "item.content")
        if problem:
            return problem
        for index, part in enumerate(item["content"]):
            problem = _check_part(part, item["role"], f"item.content[{index}]")
            if problem:
                return problem
        return None
    required = ("name", "arguments") if kind == "function_call" else ("call_id", "output")
    for name in required:
        if name not in item:
            return missing(f"item.{name}")
        problem = expect(item[name], "string", f"item.{name}")
        if problem:
            return problem
    return None


def item_from_client(item: dict[str, Any], fmt: AudioFormat) -> Item | Rejection:
    """A checked client item as stored (audio decoded; ``status`` completed)."""
    data: dict[str, Any] = {
        "id": item.get("id") or new_id("item_"),
        "type": item["type"],
        "object": "realtime.item",
        "status": "completed",
    }
    stored = Item(data, fmt=fmt)
    if item["type"] == "message":
        data["role"] = item["role"]
        data["content"] = []
        for index, part in enumerate(item["content"]):
            part = dict(part)
            if part["type"] == "input_audio":
                if stored.audio_index is not None:
                    return Rejection(
                        "invalid_value",
                        "Invalid value: a message can hold only one 'input_audio' part.",
                        f"item.content[{index}]",
                    )
                try:
                    stored.audio = base64.b64decode(part.pop("audio"), validate=True)
                except (binascii.Error, ValueError):
                    return Rejection(
                        "invalid_value",
                        "Invalid 'item.content.audio': expected base64-encoded audio.",
                        f"item.content[{index}].audio",
                    )
                part.setdefault("transcript", None)
                stored.audio_index = index
            data["content"].append(part)
    elif item["type"] == "function_call":
        data["call_id"] = item.get("call_id") or new_id("call_")
        data["name"] = item["name"]
        data["arguments"] = item["arguments"]
    else:
        data["call_id"] = item["call_id"]
        data["output"] = item["output"]
    return stored
