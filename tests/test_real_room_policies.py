"""Who is heard, through a real server: ``linked`` follows the next human, ``mix`` hears
everyone, a SIP participant is a human, and an empty room ends the call after the grace.

Each caller is a real rtc participant; the echo simulator says back what the bridge heard, so
"heard" means: the caller who spoke receives its own words back through the agent.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bridge.local.heard import segments
from bridge.local.livekit_server import Credentials
from bridge.room.caller import RoomCaller
from tests.realroom import Worker, dispatch, room_name
from tests.test_real_room import HEAR, demo_at, echoes, join, listening, stuck

RATE = 48_000
DEMO = demo_at(RATE)
QUESTION = DEMO[int(0.5 * RATE) : int(4.4 * RATE)]  # the recording's question, 3.7 s
CORRECTION = DEMO[int(6.0 * RATE) : int(8.7 * RATE)]  # its correction, 2.5 s


async def say(caller: RoomCaller, words: np.ndarray, listeners: list[RoomCaller]) -> None:
    """``caller`` says ``words`` and keeps its microphone open until every listener has heard
    the agent answer and go back to listening."""
    before = [c.state_values().count("speaking") for c in listeners]
    await caller.play(words)
    quiet = asyncio.ensure_future(caller.silence(30))
    try:
        await asyncio.gather(
            *(listening(c, replies=n + 1) for c, n in zip(listeners, before, strict=True))
        )
    finally:
        quiet.cancel()


def last_reply(caller: RoomCaller) -> np.ndarray:
    """The last reply ``caller`` heard (24 kHz): the last stretch of agent audio longer than
    half a second (a blip of decoder noise is not a reply)."""
    heard = caller.heard()
    replies = [(a, b) for a, b in segments(heard, HEAR, threshold=30) if b - a > 0.5]
    (start, end) = replies[-1]
    return heard[int(start * HEAR) : int(end * HEAR)]


def at_24k(words: np.ndarray) -> np.ndarray:
    return words[::2]  # 48 kHz speech band-limited by the recording (16 kHz): plain decimation


async def test_linked_follows_the_next_human_when_the_first_leaves(
    livekit: Credentials, bridge_worker: Worker
) -> None:
    room = room_name("linked")
    first = await join(livekit, room, "first")
    second = await join(livekit, room, "second")  # both there before the agent: it links
    # the first to have joined (a real server lists the room's participants in any order)
    try:
        await dispatch(livekit, room, {"profile": "echo-test"})  # nobody named: the first human
        await listening(first)
        await say(first, QUESTION, [first])
        assert echoes(last_reply(first), at_24k(QUESTION)) >= 0.7
        await first.aclose()  # the linked caller leaves; the other is still here
        await say(second, CORRECTION, [second])
        assert echoes(last_reply(second), at_24k(CORRECTION)) >= 0.7
    except TimeoutError:
        raise AssertionError(stuck(second, bridge_worker)) from None
    finally:
        await first.aclose()
        await second.aclose()
    follows = [
        r
        for r in bridge_worker.records("input.linked")
        if r.get("room") == room and r.get("participant") == "second"
    ]
    assert follows and follows[0]["previous"] == "first"


async def test_mix_hears_two_callers_in_turn(livekit: Credentials, bridge_worker: Worker) -> None:
    room = room_name("mix")
    one = await join(livekit, room, "one")
    two = await join(livekit, room, "two")
    try:
        await dispatch(livekit, room, {"profile": "mix-test"})
        await listening(one)
        await listening(two)
        await say(one, QUESTION, [one, two])
        await say(two, CORRECTION, [one, two])
    except TimeoutError:
        raise AssertionError(stuck(one, bridge_worker)) from None
    finally:
        heard_by_one = one.heard()
        await one.aclose()
        await two.aclose()
    # A reply is longer than half a second (a blip of decoder noise is not one: last_reply)
    replies = [(a, b) for a, b in segments(heard_by_one, HEAR, threshold=30) if b - a > 0.5]
    assert len(replies) == 2, replies  # one answer to each caller, both heard by everyone
    first, second = (heard_by_one[int(a * HEAR) : int(b * HEAR)] for a, b in replies)
    assert echoes(first, at_24k(QUESTION)) >= 0.7
    assert echoes(second, at_24k(CORRECTION)) >= 0.7


async def test_a_sip_participant_is_heard_like_a_browser(
    livekit: Credentials, bridge_worker: Worker
) -> None:
    room = room_name("sip")
    phone = await join(livekit, room, "sip_+15550100", kind="sip")
    try:
        await dispatch(livekit, room, {"profile": "echo-test"})
        await listening(phone)
        await say(phone, CORRECTION, [phone])
    except TimeoutError:
        raise AssertionError(stuck(phone, bridge_worker)) from None
    finally:
        await phone.aclose()
    assert echoes(last_reply(phone), at_24k(CORRECTION)) >= 0.7


async def test_an_empty_room_ends_the_call_and_the_worker_takes_the_next(
    livekit: Credentials, bridge_worker: Worker
) -> None:
    room = room_name("leaves")
    caller = await join(livekit, room, "leaving")
    await dispatch(livekit, room, {"profile": "echo-test"})
    await listening(caller)
    await caller.aclose()

    def ended() -> list[dict[str, object]]:
        return [r for r in bridge_worker.records("call.ended") if r.get("room") == room]

    deadline = time.monotonic() + 30  # the grace is 2 s (BRIDGE_EMPTY_ROOM_GRACE)
    while not ended():
        assert time.monotonic() < deadline, "the call did not end after its grace"
        await asyncio.sleep(0.1)
    [record] = ended()
    assert record["reason"] == "no caller left in the room"
    # The worker goes on: the next room is answered.
    nxt = room_name("next")
    caller = await join(livekit, nxt, "next")
    try:
        await dispatch(livekit, nxt, {"profile": "echo-test"})
        await listening(caller)
        await say(caller, CORRECTION, [caller])
    finally:
        await caller.aclose()
    assert echoes(last_reply(caller), at_24k(CORRECTION)) >= 0.7


async def test_rooms_dispatched_at_once_are_all_answered(
    livekit: Credentials, bridge_worker: Worker
) -> None:
    """A burst: three rooms dispatched in the same instant, each caller answered.

    Two bugs were found here: livekit-agents' own availability check refused the second of
    two simultaneous requests (and LiveKit does not retry with one worker), and two room
    connects at once in one process could hang one of them until the FFI killed the process
    (bridge/pod/worker.py and bridge/pod/agent.py say what the worker does about each).
    """
    rooms = [room_name("burst") for _ in range(3)]
    callers = [await join(livekit, room, f"burst-{i}") for i, room in enumerate(rooms)]
    try:
        await asyncio.gather(*(dispatch(livekit, r, {"profile": "echo-test"}) for r in rooms))
        await asyncio.gather(*(listening(c) for c in callers))
        await asyncio.gather(*(say(c, CORRECTION, [c]) for c in callers))
    except TimeoutError:
        raise AssertionError(stuck(callers[-1], bridge_worker)) from None
    finally:
        for caller in callers:
            await caller.aclose()
    # Each caller answered with the echo of its own words: three calls starting at once on
    # two cores conceal more (CI once heard 16 of 23 pieces, 0.696); another utterance's
    # echo scores under 0.3 (test_real_room), so half the pieces still tells them apart.
    for caller in callers:
        assert echoes(last_reply(caller), at_24k(CORRECTION)) >= 0.5
