"""Who sees the frames: process-wide observers and the optional JSON-lines journal.

Observers (``add_observer``) are called with ``(dialect, event)`` for every genuine server
event any in-process simulator sends; the test suite uses one to validate each event against
the ``openai`` SDK's models. Frames a fault deliberately mangles or invents are not genuine
events and are not passed to observers.

The journal is one JSON object per line, appended with a single ``write`` so that several
simulator processes can share a file::

    {"t": 12.345678, "conn": 3, "dir": "out", "dialect": "ga", "frame": {...}}
    {"t": ..., "conn": 3, "dir": "out", "dialect": "ga", "fault": "malformed", "raw": "{\\"ty"}
    {"t": ..., "conn": 3, "dir": "in", "dialect": "ga", "frame": {"type": "...", "bytes": 960}}
    {"t": ..., "conn": 3, "dir": "note", "dialect": "ga", "note": {"fault": "drop@agent_speaking"}}

``t`` is ``time.monotonic()``. ``dir`` is ``out`` (server to client), ``in`` (client to server,
appends reduced to their byte count) or ``note`` (connection open/close, faults fired). An
``out`` line with a ``fault`` key is deliberate junk: ``raw`` holds its text (or ``raw_b64``
its bytes) and ``frame``, when present, is an unknown event or a decorated real one.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Observer = Callable[[str, dict[str, Any]], None]

_observers: list[Observer] = []


def add_observer(observer: Observer) -> None:
    """Call ``observer(dialect, event)`` for every genuine server event from now on."""
    _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    """Stop calling ``observer`` (no error if it was not registered)."""
    if observer in _observers:
        _observers.remove(observer)


def has_observers() -> bool:
    """Whether anyone is listening (lets the hot path skip work)."""
    return bool(_observers)


def notify(dialect: str, event: dict[str, Any]) -> None:
    """Pass one server event to every observer."""
    for observer in tuple(_observers):
        observer(dialect, event)


class Journal:
    """Appends journal lines to a file; one ``os.write`` per line (atomic with O_APPEND)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _write(self, head: dict[str, Any], tail: str = "") -> None:
        if self._fd is None:
            return
        text = json.dumps(head, separators=(",", ":"))
        line = (text[:-1] + tail + "}" if tail else text) + "\n"
        os.write(self._fd, line.encode())

    def frame_out(self, conn: int, dialect: str, text: str, *, fault: str | None = None) -> None:
        """A text frame the server sent; ``text`` is its exact JSON."""
        head: dict[str, Any] = {"t": time.monotonic(), "conn": conn, "dir": "out"}
        head["dialect"] = dialect
        if fault is None:
            self._write(head, ',"frame":' + text)
            return
        head["fault"] = fault
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if isinstance(frame, dict):
            self._write(head, ',"frame":' + text)
        else:
            head["raw"] = text
            self._write(head)

    def binary_out(self, conn: int, dialect: str, data: bytes, *, fault: str) -> None:
        """A binary frame the server sent (only ever as a fault)."""
        head: dict[str, Any] = {"t": time.monotonic(), "conn": conn, "dir": "out"}
        head |= {"dialect": dialect, "fault": fault, "raw_b64": base64.b64encode(data).decode()}
        self._write(head)

    def frame_in(self, conn: int, dialect: str, frame: dict[str, Any]) -> None:
        """A client event, reduced by the caller (appends carry ``bytes``, not audio)."""
        head = {"t": time.monotonic(), "conn": conn, "dir": "in", "dialect": dialect}
        self._write(head | {"frame": frame})

    def raw_in(self, conn: int, dialect: str, raw: str) -> None:
        """A client frame that is not a JSON object (kept as text, cut to 1000 characters)."""
        head = {"t": time.monotonic(), "conn": conn, "dir": "in", "dialect": dialect}
        self._write(head | {"raw": raw[:1000]})

    def note(self, conn: int, dialect: str, note: dict[str, Any]) -> None:
        """Something that happened to a connection: opened, closed, a fault fired."""
        self._write(
            {"t": time.monotonic(), "conn": conn, "dir": "note", "dialect": dialect, "note": note}
        )

    def close(self) -> None:
        """Close the file; later writes are ignored."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
