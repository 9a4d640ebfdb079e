"""Audio in and out of the ``livekit`` SDK, with each FFI event delivered only where it belongs.

The SDK's FFI client hands every event of the process (every audio frame of every stream,
every capture completion) to every subscriber, under one lock: each ``rtc.AudioStream`` gets
every stream's frames and discards the others' on its event loop, and each
``rtc.AudioSource.capture_frame`` subscribes to *everything* (and unsubscribes, taking the
lock twice) for every frame it captures. With N calls in a process that is O(N²) wake-ups
per second plus a lock convoy between the FFI thread and every job thread; ``bridge bench``
measures it: it is most of what a call costs, and what makes calls on separate threads fall
apart long before the CPU is used up.

Here one subscriber, :class:`_Router`, serves every routed stream and capture of the process:
its filter runs on the FFI thread for each event, hands the event straight to the one loop
that waits for it (a dict lookup), and lets nothing through to the SDK's queue. Hand-offs to
a loop are coalesced (:class:`_Inbox`): a busy loop is woken once for many events, and the
FFI thread, which holds the SDK's queue lock while it routes, rarely makes the system call
that gives the GIL away:

- :class:`RoutedAudioStream`: reads one track (``async for event in stream: event.frame``),
  like ``rtc.AudioStream.from_track``;
- :class:`RoutedAudioSource`: an ``rtc.AudioSource`` whose ``capture_frame`` waits for its
  own completion only, without subscribing per frame. Everything else (``queued_duration``,
  ``clear_queue``, ``wait_for_playout``) is the SDK's.

An event can arrive before the request that caused it has returned its handle or id; the
router keeps the recent unclaimed ones while such a request is in flight, and the new
stream or capture claims its own from them.

Both rely on the SDK's FFI request types (``livekit`` 1.1.x); ``tests/test_routed_audio.py``
checks them against the SDK's own classes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, ClassVar

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient, FfiHandle
from livekit.rtc._proto import audio_frame_pb2 as proto_audio_frame, ffi_pb2 as proto_ffi

# The SDK internals used here (FfiClient.queue's subscribers and filters, the FFI request and
# event types of audio streams and captures) are private: pinned in pyproject and checked.
TESTED_WITH = ("1.1.21",)
if rtc.__version__ not in TESTED_WITH:
    raise ImportError(
        f"bridge/room/routed_audio.py was tested with livekit {', '.join(TESTED_WITH)} and"
        f" relies on its private FFI internals; livekit {rtc.__version__} is installed"
        " (install the version pyproject.toml pins, or test this module against the new one)"
    )

_UNCLAIMED = 256  # events kept while a request is in flight (per kind)


class _Inbox:
    """Events for one loop, handed over with at most one wake-up per loop iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._scheduled = False

    def post(self, deliver: Callable[[Any], None], item: Any) -> None:
        """From any thread. ``deque.append`` and the flag are atomic under the GIL."""
        self._items.append((deliver, item))
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False  # first: an item posted from now on schedules another drain
        items = self._items
        while items:
            deliver, item = items.popleft()
            deliver(item)


class _Router:
    """The process's one FFI subscriber for routed audio (created on first use)."""

    _instance: ClassVar[_Router | None] = None
    _create_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}
        self._streams: dict[int, tuple[_Inbox, asyncio.Queue[object]]] = {}
        self._captures: dict[int, tuple[_Inbox, asyncio.Future[proto_ffi.FfiEvent]]] = {}
        self._opening = 0  # stream requests in flight
        self._capturing = 0  # capture requests in flight
        self._early_frames: deque[tuple[int, proto_ffi.FfiEvent]] = deque(maxlen=_UNCLAIMED)
        self._early_done: OrderedDict[int, proto_ffi.FfiEvent] = OrderedDict()
        self.routed = 0  # events handed to their stream or capture (a count for tests)
        # The filter never lets an event through, so the SDK never queues onto this loop.
        FfiClient.instance.queue.subscribe(asyncio.new_event_loop(), filter_fn=self._route)

    @classmethod
    def get(cls) -> _Router:
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _route(self, event: proto_ffi.FfiEvent) -> bool:
        """Runs on the FFI thread for every event of the process: a lookup and a hand-off."""
        try:
            which = event.WhichOneof("message")
            if which == "audio_stream_event":
                handle = event.audio_stream_event.stream_handle
                with self._lock:
                    stream = self._streams.get(handle)
                    if stream is None and self._opening:
                        self._early_frames.append((handle, event))
                if stream is not None:
                    self.routed += 1
                    stream[0].post(stream[1].put_nowait, event)
            elif which == "capture_audio_frame":
                async_id = event.capture_audio_frame.async_id
                with self._lock:
                    capture = self._captures.pop(async_id, None)
                    if capture is None and self._capturing:
                        self._early_done[async_id] = event
                        while len(self._early_done) > _UNCLAIMED:
                            self._early_done.popitem(last=False)
                if capture is not None:
                    self.routed += 1
                    capture[0].post(_resolve, (capture[1], event))
        except Exception:  # never let an event through to the SDK's queue because of us
            pass
        return False

    def _inbox(self) -> _Inbox:
        loop = asyncio.get_running_loop()
        with self._lock:
            inbox = self._inboxes.get(loop)
            if inbox is None:
                for old in [old for old in self._inboxes if old.is_closed()]:
                    del self._inboxes[old]
                inbox = self._inboxes[loop] = _Inbox(loop)
            return inbox

    # ------------------------------------------------------------------ streams

    def open_stream(self, request: proto_ffi.FfiRequest, queue: asyncio.Queue[object]) -> int:
        inbox = self._inbox()
        with self._lock:
            self._opening += 1
        try:
            handle: int = FfiClient.instance.request(request).new_audio_stream.stream.handle.id
        finally:
            with self._lock:
                self._opening -= 1
        with self._lock:
            self._streams[handle] = (inbox, queue)
            early = [e for h, e in self._early_frames if h == handle]
        for event in early:
            self.routed += 1
            queue.put_nowait(event)
        return handle

    def close_stream(self, handle: int) -> None:
        with self._lock:
            self._streams.pop(handle, None)

    # ------------------------------------------------------------------ captures

    def capture(self, request: proto_ffi.FfiRequest) -> asyncio.Future[proto_ffi.FfiEvent]:
        inbox = self._inbox()
        done: asyncio.Future[proto_ffi.FfiEvent] = inbox.loop.create_future()
        with self._lock:
            self._capturing += 1
        try:
            async_id = FfiClient.instance.request(request).capture_audio_frame.async_id
        finally:
            with self._lock:
                self._capturing -= 1
        with self._lock:
            early = self._early_done.pop(async_id, None)
            if early is None:
                self._captures[async_id] = (inbox, done)
        if early is not None:  # it completed before the request even returned
            self.routed += 1
            done.set_result(early)
        return done

    def still_owed(
        self, done: asyncio.Future[proto_ffi.FfiEvent]
    ) -> asyncio.Future[proto_ffi.FfiEvent] | None:
        """For a capture whose waiter was cancelled (and ``done`` with it): a fresh future its
        completion will resolve, or None when the completion has already come."""
        with self._lock:
            for async_id, (inbox, future) in self._captures.items():
                if future is done:
                    owed: asyncio.Future[proto_ffi.FfiEvent] = inbox.loop.create_future()
                    self._captures[async_id] = (inbox, owed)
                    return owed
        return None

    def forget_capture(self, done: asyncio.Future[proto_ffi.FfiEvent]) -> None:
        with self._lock:
            for async_id, (_loop, future) in list(self._captures.items()):
                if future is done:
                    del self._captures[async_id]


def _resolve(pair: tuple[asyncio.Future[proto_ffi.FfiEvent], proto_ffi.FfiEvent]) -> None:
    future, event = pair
    if not future.done():
        future.set_result(event)


class RoutedAudioStream:
    """Frames of one audio track; only this stream's events wake its loop."""

    def __init__(
        self,
        track: rtc.Track,
        *,
        sample_rate: int = 48_000,
        num_channels: int = 1,
        frame_size_ms: int | None = None,
    ) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        request = proto_ffi.FfiRequest()
        new = request.new_audio_stream
        new.track_handle = track._ffi_handle.handle
        new.sample_rate = sample_rate
        new.num_channels = num_channels
        new.queue_size_frames = 0
        if frame_size_ms:
            new.frame_size_ms = frame_size_ms
        new.type = proto_audio_frame.AudioStreamType.AUDIO_STREAM_NATIVE
        self._router = _Router.get()
        self._handle_id = self._router.open_stream(request, self._queue)
        self._handle = FfiHandle(self._handle_id)
        self._ended = False

    def __aiter__(self) -> RoutedAudioStream:
        return self

    async def __anext__(self) -> rtc.AudioFrameEvent:
        while not self._ended:
            event = await self._queue.get()
            if not isinstance(event, proto_ffi.FfiEvent):
                break  # closed
            stream_event = event.audio_stream_event
            if stream_event.HasField("frame_received"):
                frame = rtc.AudioFrame._from_owned_info(stream_event.frame_received.frame)
                return rtc.AudioFrameEvent(frame)
            if stream_event.HasField("eos"):
                break
        self._end()
        raise StopAsyncIteration

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._router.close_stream(self._handle_id)

    async def aclose(self) -> None:
        self._end()
        self._handle.dispose()
        self._queue.put_nowait(None)  # wake a reader waiting on the queue


class RoutedAudioSource(rtc.AudioSource):
    """An ``rtc.AudioSource`` whose captures wait for their own completion only.

    A capture whose caller is cancelled (a playout or a caller stopped mid-frame) still
    completes natively, once the queue has room: :meth:`aclose` empties the queue and waits
    for those before it lets the handle go, because a completion the native side sends after
    the process has shut the FFI down is logged as an error (``Failed to send callback``).
    """

    def __init__(self, sample_rate: int, num_channels: int, *, queue_size_ms: int = 1000) -> None:
        super().__init__(sample_rate, num_channels, queue_size_ms=queue_size_ms)
        self._queue_s = queue_size_ms / 1000
        self._owed: set[asyncio.Future[proto_ffi.FfiEvent]] = set()  # cancelled captures

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if frame.samples_per_channel == 0 or self._ffi_handle.disposed:
            return
        self._account(frame)
        request = proto_ffi.FfiRequest()
        request.capture_audio_frame.source_handle = self._ffi_handle.handle
        request.capture_audio_frame.buffer.CopyFrom(frame._proto_info())
        router = _Router.get()
        done = router.capture(request)
        try:
            event = await done
        except asyncio.CancelledError:  # the capture itself goes on: keep track of it
            owed = router.still_owed(done)
            if owed is not None:
                self._owed.add(owed)
                owed.add_done_callback(self._owed.discard)
            raise
        if event.capture_audio_frame.error:
            raise RuntimeError(event.capture_audio_frame.error)

    async def aclose(self) -> None:
        """Close, once the cancelled captures have completed (see the class doc)."""
        if self._owed and not self._ffi_handle.disposed:
            self.clear_queue()
            await asyncio.wait(set(self._owed), timeout=self._queue_s + 0.5)
            router = _Router.get()
            for owed in list(self._owed):  # never completed: nothing will claim it
                router.forget_capture(owed)
                owed.cancel()
        await super().aclose()

    def _account(self, frame: rtc.AudioFrame) -> None:
        """Keep the SDK's own estimate of what is queued (``queued_duration``) and its
        playout waiter (``wait_for_playout``) exactly as ``rtc.AudioSource`` does."""
        now = time.monotonic()
        since_last = now - self._last_capture if self._last_capture else 0.0
        self._q_size += frame.samples_per_channel / self.sample_rate - since_last
        self._last_capture = now
        if self._join_handle is not None:
            self._join_handle.cancel()
        if self._join_fut is None:
            self._join_fut = self._loop.create_future()
        self._join_handle = self._loop.call_later(self._q_size, self._release_waiter)
