"""Captions and agent state, as stock LiveKit frontends read them (recorded at the seam)."""

from __future__ import annotations

from livekit import rtc

from bridge.call.captions import AgentCaptions, AgentState, UserCaptions
from bridge.room.loopback import LoopbackParticipant
from bridge.room.participant import PublishQueue


async def published(queue: PublishQueue) -> None:
    await queue.drain()


async def test_agent_captions_follow_playout_and_close_final() -> None:
    room = LoopbackParticipant()
    queue = PublishQueue()
    queue.start()
    played = {"item_a": 0}
    captions = AgentCaptions(room, queue, played=played.__getitem__, track_sid=lambda: "TR_agent")
    captions.add("item_a", "Hello ", at_sample=0)
    captions.add("item_a", "there, ", at_sample=4800)
    captions.add("item_a", "caller.", at_sample=9600)
    captions.end("item_a", "Hello there, caller.")
    captions.tick()  # nothing played yet: only the text that came before any audio
    played["item_a"] = 5000
    captions.tick()
    assert captions.heard("item_a") == "Hello there, "
    played["item_a"] = 20000
    captions.tick()
    await published(queue)
    [stream] = room.streams
    assert stream.topic == "lk.transcription"
    assert stream.sender_identity is None  # sent as the agent
    assert stream.chunks == ["Hello ", "there, ", "caller."]
    assert stream.attributes["lk.transcription_final"] == "false"
    assert stream.attributes["lk.transcribed_track_id"] == "TR_agent"
    assert stream.attributes["lk.segment_id"].startswith("SG_")
    assert stream.final_attributes["lk.transcription_final"] == "true"
    legacy = room.transcriptions
    assert [t.segments[0].text for t in legacy] == [
        "Hello ",
        "Hello there, ",
        "Hello there, caller.",
        "Hello there, caller.",
    ]
    assert [t.segments[0].final for t in legacy] == [False, False, False, True]
    assert {t.participant_identity for t in legacy} == {room.identity}
    assert captions.finals == {"item_a": "Hello there, caller."}


async def test_barge_in_closes_the_caption_with_only_the_heard_text() -> None:
    room = LoopbackParticipant()
    queue = PublishQueue()
    queue.start()
    played = {"item_a": 0}
    captions = AgentCaptions(room, queue, played=played.__getitem__, track_sid=lambda: "TR_agent")
    for n, word in enumerate("one two three four five".split()):
        captions.add("item_a", word + " ", at_sample=n * 4800)
    played["item_a"] = 2 * 4800 + 10  # "one two three " have been heard
    assert captions.interrupt("item_a") == "one two three "
    captions.add("item_a", "six ", at_sample=99999)  # late text of the cut item: ignored
    captions.tick()
    await published(queue)
    [stream] = room.streams
    assert stream.text == "one two three "
    assert stream.final_attributes["lk.transcription_final"] == "true"
    assert room.transcriptions[-1].segments[0].text == "one two three "
    assert room.transcriptions[-1].segments[0].final


async def test_a_caption_with_no_heard_text_still_closes_final() -> None:
    room = LoopbackParticipant()
    queue = PublishQueue()
    queue.start()
    captions = AgentCaptions(room, queue, played=lambda _i: 0, track_sid=lambda: "TR_agent")
    captions.add("item_a", "never heard", at_sample=4800)
    assert captions.interrupt("item_a") == ""
    await published(queue)
    [stream] = room.streams
    assert stream.text == "" and stream.closed


async def test_user_captions_are_sent_on_behalf_of_the_caller() -> None:
    room = LoopbackParticipant()
    queue = PublishQueue()
    queue.start()
    captions = UserCaptions(room, queue)
    captions.delta("item_u", "what is ", identity="alice", track_sid="TR_mic")
    captions.delta("item_u", "the time", identity="alice", track_sid="TR_mic")
    captions.completed("item_u", "What is the time?", identity="alice", track_sid="TR_mic")
    await published(queue)
    assert [s.text for s in room.streams] == ["what is ", "what is the time", "What is the time?"]
    assert {s.sender_identity for s in room.streams} == {"alice"}
    assert {s.attributes["lk.segment_id"] for s in room.streams} == {
        room.streams[0].attributes["lk.segment_id"]
    }
    assert [s.attributes["lk.transcription_final"] for s in room.streams] == [
        "false",
        "false",
        "true",
    ]
    assert all(s.attributes["lk.transcribed_track_id"] == "TR_mic" for s in room.streams)
    assert room.transcriptions[-1].participant_identity == "alice"


async def test_agent_state_is_published_only_on_change() -> None:
    room = LoopbackParticipant()
    queue = PublishQueue()
    queue.start()
    state = AgentState(room, queue)
    for value in ("initializing", "listening", "listening", "thinking", "speaking", "listening"):
        state.set(value)
    await published(queue)
    assert room.states() == ["initializing", "listening", "thinking", "speaking", "listening"]
    assert room.attributes["lk.agent.state"] == "listening"


async def test_a_failing_publication_does_not_stop_the_queue() -> None:
    queue = PublishQueue()
    queue.start()
    done: list[int] = []

    async def fail() -> None:
        raise rtc.PublishTranscriptionError("room gone")

    async def ok() -> None:
        done.append(1)

    queue.put(fail)
    queue.put(ok)
    await queue.drain()
    assert done == [1] and queue.failures == 1
