"""A plain ``websockets`` client for the simulator tests, and test signals.

Waiting is on events, with a timeout only as a safety net (``recv_until``); nothing sleeps
to let time pass.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect

RATE = 24_000
Samples = npt.NDArray[np.int16]


def voiced(seconds: float, dbfs: float = -20.0) -> Samples:
    """A speech-like voiced signal: a gliding 140 Hz harmonic tone at ``dbfs`` RMS."""
    t = np.arange(int(round(seconds * RATE))) / RATE
    f0 = 140.0 + 20.0 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(h * phase) / h for h in range(1, 6))
    if len(t):
        wave = wave / np.sqrt(np.mean(np.square(wave))) * 32768 * 10 ** (dbfs / 20)
    return np.asarray(np.round(wave), dtype=np.int16)


def silence(seconds: float) -> Samples:
    """Digital silence."""
    return np.zeros(int(round(seconds * RATE)), dtype=np.int16)


def utterance(lead: float = 0.5, speech: float = 1.0, tail: float = 1.0) -> Samples:
    """Silence, ``speech`` seconds of the voiced signal, silence."""
    return np.concatenate([silence(lead), voiced(speech), silence(tail)])


def b64_chunks(samples: Samples, chunk_ms: int = 20) -> Iterator[str]:
    """Base64 PCM16 chunks of ``chunk_ms``."""
    step = RATE * chunk_ms // 1000
    for start in range(0, len(samples), step):
        yield base64.b64encode(samples[start : start + step].tobytes()).decode()


def pcm(deltas: list[str]) -> Samples:
    """Concatenate base64 audio deltas into samples."""
    data = b"".join(base64.b64decode(d) for d in deltas)
    return np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)


def ncc(a: Samples, b: Samples) -> float:
    """Normalised cross-correlation of two signals at their best alignment."""
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    corr = np.correlate(x, y, mode="full")
    norm = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.max(np.abs(corr)) / norm) if norm else 0.0


async def open_ws(
    url: str,
    path: str = "/realtime?model=gpt-realtime",
    *,
    key: str | None = "test",
    headers: dict[str, str] | None = None,
    **options: Any,
) -> ClientConnection:
    """Connect to ``url`` + ``path`` with a Bearer key (and extra headers)."""
    all_headers = dict(headers or {})
    if key is not None:
        all_headers.setdefault("Authorization", f"Bearer {key}")
    return await connect(url + path, additional_headers=all_headers, max_size=None, **options)


async def send(ws: ClientConnection, kind: str, **fields: Any) -> None:
    """Send one client event."""
    await ws.send(json.dumps({"type": kind, **fields}))


async def send_audio(ws: ClientConnection, samples: Samples, chunk_ms: int = 20) -> None:
    """Append ``samples`` as fast as the socket takes them."""
    for chunk in b64_chunks(samples, chunk_ms):
        await send(ws, "input_audio_buffer.append", audio=chunk)


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next event (JSON text frames only)."""
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), f"binary frame: {message!r:.60}"
    event = json.loads(message)
    assert isinstance(event, dict)
    return event


async def recv_until(
    ws: ClientConnection, kind: str, timeout: float = 10.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read events until one of type ``kind``; returns it and everything read before it."""
    seen: list[dict[str, Any]] = []

    async def loop() -> dict[str, Any]:
        while True:
            event = await recv(ws, timeout)
            if event["type"] == kind:
                return event
            seen.append(event)

    event = await asyncio.wait_for(loop(), timeout)
    return event, seen


async def configure(ws: ClientConnection, **session: Any) -> dict[str, Any]:
    """``session.created`` then a ``session.update``; returns the ``session.updated`` event."""
    created = await recv(ws)
    assert created["type"] == "session.created", created
    await send(ws, "session.update", session={"type": "realtime", **session})
    updated, _ = await recv_until(ws, "session.updated")
    return updated


def vad(silence_ms: int = 300, **options: Any) -> dict[str, Any]:
    """``audio`` session settings with server VAD."""
    td = {"type": "server_vad", "silence_duration_ms": silence_ms, **options}
    return {"input": {"turn_detection": td}}


def types(events: list[dict[str, Any]]) -> list[str]:
    """The ``type`` of each event."""
    return [e["type"] for e in events]
