"""Calls on the process's media loop, the room on its own: the production threading.

``bridge.pod.agent`` runs every call on one :class:`MediaLoop` while each job's room stays on the
job's loop. Here the test's loop plays the room (a loopback caller, the agent's recorded
participant) and a media loop runs the calls, exactly as ``run_job`` wires them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import structlog

from bridge.call.call import Call
from bridge.call.profiles import ProfileSet
from bridge.local.wavfile import read_wav
from bridge.pod.agent import CallRegistry
from bridge.room.listener import Listener
from bridge.room.loopback import LoopbackCaller, LoopbackParticipant
from bridge.room.media_loop import LoopBoundParticipant, MediaLoop
from bridge.room.participant import Human
from sessions.endpoint import Endpoint
from tests.test_trial import DEMO


@pytest.fixture
def media() -> Iterator[MediaLoop]:
    loop = MediaLoop("test-media")
    yield loop
    loop.stop()


async def test_run_returns_results_and_raises_errors_across_loops(media: MediaLoop) -> None:
    async def where() -> int:
        return threading.get_ident()

    async def fail() -> None:
        raise ValueError("on the media loop")

    assert await media.run(where()) != threading.get_ident()
    with pytest.raises(ValueError, match="on the media loop"):
        await media.run(fail())


async def test_cancelling_the_waiter_cancels_the_work(media: MediaLoop) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiter = asyncio.ensure_future(media.run(forever()))
    await asyncio.to_thread(started.wait, 5)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await asyncio.to_thread(cancelled.wait, 5)


async def test_bound_log_context_travels_with_the_work(media: MediaLoop) -> None:
    structlog.contextvars.bind_contextvars(room="room-1", job="job-1")

    async def context() -> dict[str, object]:
        return structlog.contextvars.get_contextvars()

    try:
        seen = await media.run(context())
        assert seen["room"] == "room-1" and seen["job"] == "job-1"
    finally:
        structlog.contextvars.clear_contextvars()


async def test_a_call_on_the_media_loop_converses_and_drains_through_the_room_loop(
    media: MediaLoop, simulator
) -> None:
    sim = await simulator(behavior="echo")
    endpoint = Endpoint.compatible(sim.url, api_key="k")
    profile = ProfileSet.builtin().default
    room = LoopbackParticipant("agent-media")  # the room's side, on this (the test's) loop
    listeners: list[Listener] = []
    room.on_track = lambda track: listeners.append(Listener(track))
    caller = LoopbackCaller(16_000)
    participant = LoopBoundParticipant(room, asyncio.get_running_loop())

    async def create() -> Call:
        return Call(participant, profile, endpoint)

    call = await media.run(create())
    await media.run(call.start())
    media.call_soon(call.input.participant_joined, Human(caller.identity))
    media.call_soon(call.input.track_subscribed, caller.identity, caller.track)
    wav = read_wav(DEMO)
    await caller.play(wav.samples[: int(5.5 * wav.rate)])  # the question, then a pause
    listener = listeners[0]
    await listener.until(lambda: listener.voiced > 24_000)  # a second of the echo was heard

    registry = CallRegistry(calls={call})
    ended = await media.run(registry.drain(limit=0.05))
    await media.run(call.aclose())
    await listener.aclose()
    await caller.aclose()

    assert ended == 1
    assert call.record.responses >= 1 and "drain" in call.record.end_reason
    states = room.states()  # published on the room's loop, in order
    assert states[0] == "initializing" and "speaking" in states and states[-1] == "idle"
    assert [p.source for p in room.publications] == [2]  # SOURCE_MICROPHONE
    assert np.count_nonzero(listener.audio()) > 24_000


FREEZE_PROBE = """
import gc
from bridge import heap
from bridge.room.media_loop import MediaLoop
assert gc.get_freeze_count() == 0
media = MediaLoop.shared()  # a process's first call: what is alive leaves full collections
frozen = gc.get_freeze_count()
again = heap.freeze_long_lived(collect=True)  # once per process: nothing more to do
cycle = []
cycle.append(cycle)  # made after the freeze: still collected
del cycle
print(frozen > 10_000, again, gc.collect() >= 1)
media.stop()
"""


def test_the_first_media_loop_freezes_start_up_objects_out_of_full_collections() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1].split() == ["True", "False", "True"], out.stderr
