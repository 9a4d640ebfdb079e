"""The outbound queue: order kept; oldest audio dropped past the bound; control never."""

from __future__ import annotations

import asyncio

from sessions.outbound import OutboundQueue
from sessions.protocol import OutboundFrame


def audio(n: int) -> OutboundFrame:
    return OutboundFrame(b"a%d" % n, "input_audio_buffer.append", 480)


def control(n: int) -> OutboundFrame:
    return OutboundFrame(b"c%d" % n, "response.cancel")


def drain(q: OutboundQueue) -> list[bytes]:
    out = []
    while (frame := q.get_nowait()) is not None:
        out.append(frame.data)
    return out


def test_frames_leave_in_order() -> None:
    q = OutboundQueue(max_audio=10)
    for frame in (audio(1), control(1), audio(2), control(2)):
        q.put(frame)
    assert drain(q) == [b"a1", b"c1", b"a2", b"c2"]


def test_oldest_audio_is_dropped_and_counted_never_control() -> None:
    q = OutboundQueue(max_audio=2)
    q.put(control(0))
    for n in range(1, 6):
        q.put(audio(n))
        q.put(control(n))
    assert drain(q) == [b"c0", b"c1", b"c2", b"c3", b"a4", b"c4", b"a5", b"c5"]
    assert (q.dropped_frames, q.dropped_samples) == (3, 3 * 480)


async def test_get_waits_for_a_frame() -> None:
    q = OutboundQueue(max_audio=2)
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put(control(1))
    assert (await getter).data == b"c1"


def test_audio_waiting_too_long_is_dropped_but_a_burst_is_kept() -> None:
    now = [0.0]
    q = OutboundQueue(max_audio=100, max_audio_age_s=2.0, clock=lambda: now[0])
    for n in range(50):  # a backlog queued at once: none of it is late
        q.put(audio(n))
    assert q.dropped_frames == 0
    now[0] = 2.5  # the socket did not drain for 2.5 s: the old appends go
    q.put(audio(50))
    assert q.dropped_frames == 50 and q.queued_audio == 1
    assert [f.data for f in q.take_all()] == [b"a50"]


def test_take_all_empties_the_queue() -> None:
    q = OutboundQueue(max_audio=4)
    q.put(audio(1))
    q.put(control(1))
    assert [f.data for f in q.take_all()] == [b"a1", b"c1"]
    assert len(q) == 0 and q.queued_audio == 0
