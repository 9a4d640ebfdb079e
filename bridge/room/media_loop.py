"""One event loop, on one thread, for every call of a bridge process.

``livekit-agents`` runs each job on a thread and event loop of its own (thread executor) or
in a process of its own (process executor). With a thread per call, every audio frame of every
call makes the SDK's FFI thread, which holds one lock per event, fight N busy threads for the
GIL: ``bridge bench`` measured 16 calls on 16 threads falling apart (underruns, seconds of
voice-to-voice) at 60 % of two cores, while the same 16 calls on one loop ran clean at 40 %.
So the job's own loop keeps only the room (its events, its publications), and each
:class:`~bridge.call.call.Call` lives on the process's :class:`MediaLoop`:

- :meth:`MediaLoop.run` runs a coroutine there from any other loop and awaits its result
  (cancelling the waiter cancels it); the caller's context variables (structlog's bound
  room, job and call ids) go with it: a copy of them, or ``context`` itself when given, so
  that what one coroutine binds (a call's id, its session's) is seen by the next ones run
  in the same context (``bridge.pod.agent.run_job`` keeps one per call);
- :class:`LoopBoundParticipant` is the room's participant as the call sees it: each
  publication is carried back to the room's loop, where the room's own futures live.

With the process executor each job process has its own media loop, holding its one call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from livekit import rtc

from bridge.heap import freeze_long_lived
from bridge.room.participant import AgentParticipant, Publication, TextWriter

T = TypeVar("T")


class MediaLoop:
    """An event loop running on a daemon thread of its own."""

    _shared: ClassVar[MediaLoop | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "bridge-media") -> None:
        self.name = name
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    @classmethod
    def shared(cls) -> MediaLoop:
        """The process's media loop (started on first use).

        Starting it freezes the objects alive then out of the garbage collector's full
        collections (:mod:`bridge.heap`; ``bridge start`` has done it already, with a
        collection, before taking calls; a job process of the process executor does it here).
        """
        with cls._shared_lock:
            if cls._shared is None or not cls._shared.running:
                freeze_long_lived(collect=False)
                cls._shared = cls()
            return cls._shared

    @classmethod
    def current(cls) -> MediaLoop | None:
        """The process's media loop if it is running, without starting one."""
        shared = cls._shared
        return shared if shared is not None and shared.running else None

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._loop is not None and not self._loop.is_closed()

    def submit(
        self, coro: Coroutine[Any, Any, T], context: contextvars.Context | None = None
    ) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on this loop, in ``context`` (default: a copy of the caller's)."""
        context = context if context is not None else contextvars.copy_context()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            task = self.loop.create_task(coro, context=context)

            def done(task: asyncio.Task[T]) -> None:
                if result.done():  # the waiter gave up (cancelled) first
                    return
                if task.cancelled():
                    result.cancel()
                elif (exc := task.exception()) is not None:
                    result.set_exception(exc)
                else:
                    result.set_result(task.result())

            task.add_done_callback(done)
            result.add_done_callback(
                lambda f: f.cancelled() and self.loop.call_soon_threadsafe(task.cancel)
            )

        self.loop.call_soon_threadsafe(start, context=context)
        return result

    async def run(
        self, coro: Coroutine[Any, Any, T], context: contextvars.Context | None = None
    ) -> T:
        """Run ``coro`` on this loop (in ``context`` when given) and wait for it from the
        current one."""
        if asyncio.get_running_loop() is self._loop:
            if context is not None:
                return await self.loop.create_task(coro, context=context)
            return await coro
        return await asyncio.wrap_future(self.submit(coro, context))

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` on this loop, in a copy of the caller's context."""
        self.loop.call_soon_threadsafe(callback, *args, context=contextvars.copy_context())

    def stop(self) -> None:
        if self.running:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


class _LoopBoundWriter:
    def __init__(self, writer: TextWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._loop = loop

    async def write(self, text: str) -> None:
        await _on(self._loop, self._writer.write(text))

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        await _on(self._loop, self._writer.aclose(reason=reason, attributes=attributes))


async def _on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on ``loop`` (the room's), from whichever loop we are on."""
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if current is loop:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


class LoopBoundParticipant:
    """``participant`` (bound to ``loop``, the room's) as seen from the media loop."""

    def __init__(self, participant: AgentParticipant, loop: asyncio.AbstractEventLoop) -> None:
        self._participant = participant
        self._loop = loop

    @property
    def identity(self) -> str:
        return self._participant.identity

    async def publish_track(
        self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions | None = None
    ) -> Publication:
        options = options or rtc.TrackPublishOptions()
        return await _on(self._loop, self._participant.publish_track(track, options))

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        await _on(self._loop, self._participant.set_attributes(attributes))

    async def stream_text(
        self,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
        sender_identity: str | None = None,
    ) -> TextWriter:
        writer = await _on(
            self._loop,
            self._participant.stream_text(
                destination_identities=destination_identities,
                topic=topic,
                attributes=attributes,
                stream_id=stream_id,
                reply_to_id=reply_to_id,
                total_size=total_size,
                sender_identity=sender_identity,
            ),
        )
        return _LoopBoundWriter(writer, self._loop)

    async def publish_transcription(self, transcription: rtc.Transcription) -> None:
        await _on(self._loop, self._participant.publish_transcription(transcription))
