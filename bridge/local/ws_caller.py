"""A caller on its own WebSocket to the Realtime API: the official SDK's pattern, a browser's
playout.

What a web or mobile app does when it skips WebRTC and talks to the model directly:

- **The socket**: the official ``openai`` SDK's client, as its documentation shows it
  (``AsyncOpenAI(...).realtime.connect(model=...)``, ``session.update``, then
  ``input_audio_buffer.append`` with base64 24 kHz PCM16 (serialised once and sent with the
  connection's ``send_raw``: the same frames) and events read with
  ``async for event in connection``), at its defaults: no reconnection (the SDK offers one
  only when asked), ``websockets``' keepalive (a ping every 20 s, 20 s to answer).
- **The microphone**: 10 ms of audio every 10 ms on the caller's clock (should this
  process fall behind it, the time lost goes by in silence on both tracks:
  :meth:`~bridge.local.caller_script.Mouth.pause`), sent as 20 ms appends (the bridge's
  own chunk, so neither path is handicapped by batching). Sending never blocks the
  microphone: appends wait in an unbounded queue drained by one sender
  task, as a browser's ``WebSocket.send`` buffers (``bufferedAmount``) while TCP is stuck.
- **The loudspeaker** (:class:`BrowserPlayer`): OpenAI's reference player for the WebSocket
  API in a browser, ``wavtools``' ``WavStreamPlayer`` of openai-realtime-console (an
  AudioWorklet, ``stream_processor.js``): deltas are queued as they arrive and played at
  once, in order; there is no jitter buffer and nothing is ever dropped or sped up: when
  the queue runs dry the worklet stops (silence) and the next delta starts it again, so
  audio that arrives late plays late. On ``input_audio_buffer.speech_started`` the app
  interrupts it (the queue is cleared, later audio of that item ignored) and truncates the
  item at the samples played (``conversation.item.truncate``), as the console does. This is
  the buffer to model because it is what such clients ship: TCP hands over every byte in
  order, so there is nothing to conceal, and any pre-buffer would only add its own length
  to every reply. (The 128-sample render quantum and the device's output latency are left
  out, as the WebRTC caller's audio device is.)

:func:`websocket_call` runs one call of a :class:`~bridge.local.caller_script.Mouth` and
returns what was said and heard, aligned sample for sample: the microphone and the
loudspeaker run on one clock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bridge.local.caller_script import FRAME_S, Ear, Mouth

RATE = 24_000
APPEND_SAMPLES = 480  # 20 ms
STALL_S = 0.03  # later than this on the caller's clock: a stall of the caller itself


class BrowserPlayer:
    """``WavStreamPlayer``'s playout (see the module docstring), one render call per tick."""

    def __init__(self) -> None:
        self._queue: deque[tuple[str, NDArray[np.int16]]] = deque()
        self._head = 0  # samples of the first queued chunk already played
        self._interrupted: set[str] = set()
        self.played: dict[str, int] = {}  # samples played per item
        self.current: str | None = None  # the item playing (or last played)
        self._running = False

    @property
    def queued(self) -> int:
        return sum(chunk.size for _, chunk in self._queue) - self._head

    def write(self, item_id: str, pcm: NDArray[np.int16]) -> None:
        if item_id not in self._interrupted and pcm.size:
            self._queue.append((item_id, pcm))

    def render(self, n: int) -> NDArray[np.int16]:
        """The next ``n`` samples out of the loudspeaker (zeros where the queue is dry)."""
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._queue:
            item, chunk = self._queue[0]
            take = min(n - filled, chunk.size - self._head)
            out[filled : filled + take] = chunk[self._head : self._head + take]
            filled += take
            self._head += take
            self.current = item
            self.played[item] = self.played.get(item, 0) + take
            if self._head >= chunk.size:
                self._queue.popleft()
                self._head = 0
        self._running = filled == n
        return out

    def interrupt(self) -> tuple[str, int] | None:
        """Stop: (item, samples of it played) when something was playing or queued."""
        item = self.current if not self._queue else self._queue[0][0]
        if item is None or (not self._queue and not self._running):
            return None
        self._queue.clear()
        self._head = 0
        self._running = False
        self._interrupted.add(item)
        return item, self.played.get(item, 0)


@dataclass
class WebSocketOutcome:
    said: NDArray[np.int16]
    heard: NDArray[np.int16]
    started_at: float  # time.monotonic() of sample 0 of both
    survived: bool
    failure: str | None
    events: dict[str, int] = field(default_factory=dict)  # server events by type
    truncations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    max_send_backlog: int = 0  # appends waiting to be written, at most
    stalled_ms: float = 0.0  # the caller's own process late on its clock (pause())


def session_config(silence_ms: int = 400) -> dict[str, Any]:
    """The same session the bridge's echo profile asks for (server VAD, 400 ms silence)."""
    return {
        "type": "realtime",
        "instructions": "Say back what you hear.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": silence_ms,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "cedar"},
        },
    }


async def websocket_call(
    url: str,
    mouth: Mouth,
    *,
    ready: Callable[[], Awaitable[None]],
    on_events: Callable[[list[dict[str, Any]], float], None],
    model: str = "gpt-realtime",
    api_key: str = "sk-local-simulator",
) -> WebSocketOutcome:
    """One call: connect and configure, ``await ready()`` (the parent's go), run ``mouth``
    to its end; ``on_events(events, started_at)`` gets the mouth's events as they happen."""
    from openai import AsyncOpenAI

    if mouth.rate != RATE:
        raise ValueError("the WebSocket caller speaks at 24 kHz")
    client = AsyncOpenAI(api_key=api_key, websocket_base_url=url)
    player = BrowserPlayer()
    ear = Ear()
    said: list[NDArray[np.int16]] = []
    heard: list[NDArray[np.int16]] = []
    counts: dict[str, int] = {}
    truncations: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    outbox: asyncio.Queue[str] = asyncio.Queue()
    backlog = 0
    failure: str | None = None
    async with client.realtime.connect(model=model) as conn:
        await conn.session.update(session=session_config())  # type: ignore[arg-type]
        async with asyncio.timeout(20):
            async for event in conn:
                if event.type == "session.updated":
                    break
        await ready()

        async def read() -> None:
            async for event in conn:
                counts[event.type] = counts.get(event.type, 0) + 1
                if event.type == "response.output_audio.delta":
                    pcm = np.frombuffer(base64.b64decode(event.delta), dtype=np.int16)
                    player.write(event.item_id, pcm)
                elif event.type == "input_audio_buffer.speech_started":
                    stopped = player.interrupt()
                    if stopped is not None:
                        item, played = stopped
                        end_ms = played * 1000 // RATE
                        truncations.append({"item_id": item, "audio_end_ms": end_ms})
                        await conn.conversation.item.truncate(
                            item_id=item, content_index=0, audio_end_ms=end_ms
                        )
                elif event.type == "error":
                    errors.append({"code": event.error.code, "message": event.error.message})

        async def send() -> None:
            while True:
                audio = await outbox.get()
                # The SDK's connection, the SDK's wire format; serialised here once rather
                # than through the SDK's parameter transform (2.3 ms an append in Python,
                # which a browser does not pay and which would load the caller's clock).
                event = {"type": "input_audio_buffer.append", "audio": audio}
                await conn.send_raw(json.dumps(event))

        reader = asyncio.ensure_future(read())
        sender = asyncio.ensure_future(send())
        started_at = time.monotonic()
        pending = np.zeros(0, dtype=np.int16)
        k = 0
        try:
            while not reader.done() and not sender.done():
                behind = time.monotonic() - (started_at + k * FRAME_S)
                if behind > STALL_S:  # this process was starved: the clock went on
                    gap = int(behind / FRAME_S)
                    silence = mouth.pause(gap)  # what the microphone "caught" meanwhile
                    said.append(silence)
                    pending = np.concatenate((pending, silence))
                    heard.append(np.zeros(silence.size, dtype=np.int16))
                    k += gap
                frame = mouth.frame(ear)
                if frame is None:
                    break
                said.append(frame)
                pending = np.concatenate((pending, frame))
                if pending.size >= APPEND_SAMPLES:
                    outbox.put_nowait(base64.b64encode(pending.tobytes()).decode())
                    pending = np.zeros(0, dtype=np.int16)
                    backlog = max(backlog, outbox.qsize())
                out = player.render(frame.size)
                ear.hear(k * FRAME_S, out, RATE)
                heard.append(out)
                events = mouth.take_events()
                if events:
                    on_events(events, started_at)
                k += 1
                delay = started_at + k * FRAME_S - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        finally:
            for task in (reader, sender):
                task.cancel()
            for task in (reader, sender):
                with contextlib.suppress(asyncio.CancelledError):
                    try:
                        await task
                    except Exception as exc:  # the socket died: the call did not survive
                        failure = f"{type(exc).__name__}: {exc}"
        if failure is None and not mouth.done:
            failure = "the connection ended before the script"
    return WebSocketOutcome(
        said=np.concatenate(said) if said else np.zeros(0, np.int16),
        heard=np.concatenate(heard) if heard else np.zeros(0, np.int16),
        started_at=started_at,
        survived=failure is None,
        failure=failure,
        events=counts,
        truncations=truncations,
        errors=errors,
        max_send_backlog=backlog,
        stalled_ms=mouth.stalled_frames * FRAME_S * 1000,
    )
