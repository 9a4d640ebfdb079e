"""The client's mirror of the server-side conversation.

The protocol core updates it from server events; it answers two questions the bridge asks:
how much audio of an assistant item has been received (to clamp a truncation), and what the
conversation holds (to replay it on a new socket). Item ids are kept across sockets: replayed
items are created with their original ids, so the mirror stays valid after a reconnect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sessions.events import CallId, Item, ItemId

BYTES_PER_MS = 48  # PCM16 mono at 24 kHz


@dataclass(slots=True)
class ItemRecord:
    """What we know of one item. Mutable: deltas add to it as they arrive."""

    id: ItemId
    type: str
    role: str | None = None
    status: str | None = None
    text: str = ""  # text content, or the audio transcript as received
    audio_bytes: int = 0  # assistant audio received (whole and partial samples)
    has_audio: bool = False
    audio_complete: bool = False  # no more audio will come (audio done, or response done)
    truncated_ms: int | None = None  # audio_end_ms of a truncation the server confirmed
    heard_text: str | None = None  # what the listener heard, when a truncation cut the text
    call_id: CallId | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    response_id: str | None = None

    @property
    def audio_ms(self) -> int:
        """Milliseconds of assistant audio received for this item (whole ms, rounded down)."""
        return self.audio_bytes // BYTES_PER_MS

    @property
    def replay_text(self) -> str:
        """The text a replay should carry: what was heard when the item was cut short."""
        return self.heard_text if self.heard_text is not None else self.text


MAX_ITEMS = 4096  # far beyond an hour's call; a hostile or broken server cannot grow it more


class Conversation:
    """Items in the order the server reported them (the oldest are forgotten past 4096)."""

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self._items: dict[ItemId, ItemRecord] = {}
        self.max_items = max_items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ItemRecord]:
        return iter(list(self._items.values()))

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> ItemRecord | None:
        return self._items.get(ItemId(item_id))

    def last_id(self) -> ItemId | None:
        return next(reversed(self._items), None)

    def upsert(self, item: Item, response_id: str | None = None) -> ItemRecord:
        """Add an item, or refresh what the server now says of it."""
        record = self._items.get(item.id)
        if record is None:
            record = self._add(ItemRecord(id=item.id, type=item.type))
        record.role = item.role or record.role
        record.status = item.status or record.status
        record.has_audio = record.has_audio or item.has_audio
        if item.text:
            record.text = item.text
        if item.call_id is not None:
            record.call_id = item.call_id
        if item.name is not None:
            record.name = item.name
        if item.arguments is not None:
            record.arguments = item.arguments
        if item.output is not None:
            record.output = item.output
        if response_id is not None:
            record.response_id = response_id
        return record

    def ensure(
        self, item_id: ItemId, *, type: str = "message", role: str = "assistant"
    ) -> ItemRecord:
        """The record for ``item_id``, created if a delta arrives before its item."""
        record = self._items.get(item_id)
        if record is None:
            record = self._add(ItemRecord(id=item_id, type=type, role=role))
        return record

    def _add(self, record: ItemRecord) -> ItemRecord:
        self._items[record.id] = record
        if len(self._items) > self.max_items:
            del self._items[next(iter(self._items))]
        return record

    def remove(self, item_id: str) -> None:
        self._items.pop(ItemId(item_id), None)

    def clear(self) -> None:
        self._items.clear()
