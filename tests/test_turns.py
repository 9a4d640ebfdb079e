"""The sans-I/O turn core: events and playout facts in, actions out. No loop, no clock."""

from __future__ import annotations

import json

import numpy as np

from sessions import events as ev
from sessions.events import Item, ItemId, ResponseId
from sessions.protocol import RealtimeProtocol
from sessions.session_config import ServerVad, SessionConfig
from sessions.turns import (
    MAX_HELD,
    Boundary,
    CancelResponse,
    CloseCaption,
    CreateResponse,
    CutItem,
    DiscardResponse,
    EndAudio,
    ExpectAudio,
    SendUserText,
    SetAgentState,
    StopPlayout,
    TurnAction,
    TurnEnded,
    TurnTaking,
)
from tests import frames as f

PCM_100MS = (np.arange(2400, dtype=np.int16) % 200 * 50).tobytes()


def started(ms: int = 1200) -> ev.SpeechStarted:
    return ev.SpeechStarted(audio_start_ms=ms, item_id=ItemId("it_user"))


def stopped(ms: int = 2500, item: str = "it_user") -> ev.SpeechStopped:
    return ev.SpeechStopped(audio_end_ms=ms, item_id=ItemId(item))


def created(rid: str) -> ev.ResponseCreated:
    return ev.ResponseCreated(response_id=ResponseId(rid))


def done(rid: str, status: str = "completed") -> ev.ResponseDone:
    return ev.ResponseDone(response_id=ResponseId(rid), status=status, reason=None, usage=None)


def delta(rid: str, iid: str) -> ev.AudioDelta:
    return ev.AudioDelta(response_id=ResponseId(rid), item_id=ItemId(iid), pcm=b"\0\0")


def item_added(rid: str, iid: str, type: str = "message") -> ev.OutputItemAdded:
    role = "assistant" if type == "message" else None
    return ev.OutputItemAdded(response_id=ResponseId(rid), item=Item(ItemId(iid), type, role))


# ---------------------------------------------------------------- barge-in


def test_speech_started_stops_the_playout_first_then_listens() -> None:
    turns = TurnTaking()
    assert turns.receive(started(1200)) == (StopPlayout("speech"), SetAgentState("listening"))
    assert turns.caller_speaking and turns.speech_start_ms == 1200


def test_what_was_played_is_what_is_cut_and_the_response_is_discarded() -> None:
    turns = TurnTaking()
    actions = turns.playout_stopped({"it_a": 7_200, "it_b": 0}, response_id="resp_1")
    assert actions == (
        DiscardResponse(ResponseId("resp_1")),
        CutItem(ItemId("it_a"), 300),  # 7200 samples at 24 kHz
        CutItem(ItemId("it_b"), 0),  # nothing heard: the protocol deletes it
    )


def test_played_milliseconds_are_rounded_down() -> None:
    turns = TurnTaking()
    assert turns.playout_stopped({"it_a": 23}, response_id=None) == (CutItem(ItemId("it_a"), 0),)
    assert turns.playout_stopped({"it_a": 24 * 481 - 1}, response_id=None) == (
        CutItem(ItemId("it_a"), 480),
    )


def test_a_server_that_does_not_cancel_on_speech_gets_a_cancel() -> None:
    for config in (
        SessionConfig(turn_detection=None),
        SessionConfig(turn_detection=ServerVad(interrupt_response=False)),
    ):
        turns = TurnTaking.for_config(config)
        assert turns.playout_stopped({}, response_id="resp_1") == (
            DiscardResponse(ResponseId("resp_1")),
            CancelResponse(),
        )
    turns = TurnTaking.for_config(SessionConfig(turn_detection=ServerVad()))
    assert turns.playout_stopped({}, response_id="resp_1") == (
        DiscardResponse(ResponseId("resp_1")),
    )


def test_nothing_active_nothing_playing_means_nothing_to_cut() -> None:
    assert TurnTaking(cancel_on_barge_in=True).playout_stopped({}, response_id=None) == ()


def test_a_barge_in_wire_to_wire_truncates_at_what_was_heard() -> None:
    """The protocol core and the turn core together, the way the bridge drives them."""
    protocol = RealtimeProtocol()
    turns = TurnTaking()
    for text in (
        f.response_created("resp_1"),
        f.output_item_added("resp_1", "it_a"),
        f.audio_delta("resp_1", "it_a", PCM_100MS),
        f.audio_delta("resp_1", "it_a", PCM_100MS),
    ):
        protocol.receive_text(text)
    for event in protocol.events_received():
        turns.receive(event)
    protocol.receive_text(
        f.event("input_audio_buffer.speech_started", audio_start_ms=900, item_id="it_u")
    )
    [speech] = protocol.events_received()
    first = turns.receive(speech)
    assert first[0] == StopPlayout("speech")
    # The playout had let 130 ms of it out when it was cleared.
    for action in turns.playout_stopped(
        {"it_a": 130 * 24}, response_id=protocol.active_response_id
    ):
        if isinstance(action, DiscardResponse):
            protocol.discard_response(action.response_id)
        elif isinstance(action, CutItem):
            protocol.truncate(action.item_id, action.played_ms)
    [truncate] = [json.loads(frame.data) for frame in protocol.data_to_send()]
    assert (truncate["type"], truncate["item_id"], truncate["audio_end_ms"]) == (
        "conversation.item.truncate",
        "it_a",
        130,
    )
    protocol.receive_text(f.audio_delta("resp_1", "it_a", PCM_100MS))
    assert protocol.events_received() == []  # the rest of the reply is dropped


# ---------------------------------------------------------------- a turn and its reply


def test_speech_stopped_ends_the_turn_and_awaits_the_reply() -> None:
    turns = TurnTaking()
    turns.receive(started(1200))
    assert turns.receive(stopped(2500)) == (
        TurnEnded(ItemId("it_user"), 2500, 1300),
        SetAgentState("thinking"),
    )
    assert not turns.caller_speaking and turns.speech_start_ms is None
    assert turns.awaiting_reply and turns.busy


def test_the_reply_heard_makes_the_agent_speak_until_the_source_is_idle() -> None:
    turns = TurnTaking()
    turns.receive(stopped())
    turns.receive(created("resp_1"))
    assert turns.receive(item_added("resp_1", "it_a")) == (ExpectAudio(ItemId("it_a")),)
    assert turns.item_started("it_a") == (SetAgentState("speaking"),)
    assert turns.playing and not turns.awaiting_reply
    assert turns.receive(done("resp_1")) == ()  # audio mode: the idle source says when
    assert turns.playout_idle(reply_active=False) == (SetAgentState("listening"),)
    assert not turns.busy


def test_idle_playout_stays_quiet_while_the_caller_speaks_or_a_reply_is_due() -> None:
    turns = TurnTaking()
    assert turns.playout_idle(reply_active=True) == ()  # a chat reply was asked for
    turns.receive(started())
    assert turns.playout_idle(reply_active=False) == ()


def test_only_the_reply_to_the_awaited_turn_ends_the_wait() -> None:
    turns = TurnTaking()
    turns.receive(created("resp_old"))  # being answered when the caller talked over it
    turns.receive(started())
    turns.receive(stopped())
    turns.receive(done("resp_old", "cancelled"))  # its cancellation arrives late
    assert turns.awaiting_reply
    turns.receive(created("resp_new"))
    turns.receive(done("resp_new"))  # a tool call, or a reply with no audio for us
    assert not turns.awaiting_reply


def test_text_replies_end_at_response_done_and_expect_no_audio() -> None:
    turns = TurnTaking.for_config(SessionConfig(output_modalities=("text",)))
    turns.receive(stopped())
    turns.receive(created("resp_1"))
    assert turns.receive(item_added("resp_1", "it_a")) == ()
    assert turns.receive(done("resp_1")) == (SetAgentState("listening"),)
    assert not turns.busy


def test_only_messages_are_played() -> None:
    turns = TurnTaking()
    assert turns.receive(item_added("resp_1", "call_1", type="function_call")) == ()


# ---------------------------------------------------------------- chat, sockets, boundaries


def test_a_typed_message_stops_the_agent_then_is_answered() -> None:
    turns = TurnTaking()
    assert turns.chat("  What about Berlin? ") == (
        StopPlayout("chat"),
        SendUserText("What about Berlin?"),
        CreateResponse(),
        SetAgentState("thinking"),
    )
    assert turns.chat(" \n ") == ()


def test_a_new_socket_forgets_the_speech_but_not_the_turn() -> None:
    turns = TurnTaking()
    turns.receive(stopped())
    turns.receive(started(3000))  # cut off mid-speech by a drop
    turns.socket_replaced()
    assert not turns.caller_speaking and turns.speech_start_ms is None
    assert turns.awaiting_reply
    # The speech is reported anew by the new socket, from its own timeline.
    turns.receive(started(400))
    actions: tuple[TurnAction, ...] = turns.receive(stopped(1400))
    assert actions[0] == TurnEnded(ItemId("it_user"), 1400, 1000)


def test_a_reply_created_on_the_old_socket_does_not_count_on_the_new_one() -> None:
    turns = TurnTaking()
    turns.receive(stopped())
    turns.receive(created("resp_cut"))  # then the socket dropped
    turns.socket_replaced()
    turns.receive(created("resp_resumed"))
    turns.receive(done("resp_resumed"))
    assert not turns.awaiting_reply


def test_boundaries() -> None:
    turns = TurnTaking()
    assert turns.boundary(reply_active=False) is Boundary.STRICT
    assert turns.boundary(reply_active=True) is Boundary.NONE
    turns.receive(started())
    assert turns.boundary(reply_active=False) is Boundary.NONE  # the caller is speaking
    turns.receive(stopped())
    assert turns.boundary(reply_active=False) is Boundary.LOOSE  # the reply is awaited
    turns.item_started("it_a")
    assert turns.boundary(reply_active=False) is Boundary.LOOSE  # ... and now playing
    turns.playout_idle(reply_active=False)
    assert turns.boundary(reply_active=False) is Boundary.STRICT


# ---------------------------------------------------------------- a reply cut by a lost socket


def test_a_reply_cut_by_a_lost_socket_plays_out_then_its_caption_closes() -> None:
    turns = TurnTaking()
    turns.receive(item_added("resp_1", "it_a"))
    turns.receive(delta("resp_1", "it_a"))
    turns.item_started("it_a")
    # The socket drops mid-reply; a new one takes over: no more audio will come for it.
    assert turns.socket_replaced() == (EndAudio(ItemId("it_a")),)
    assert turns.socket_replaced() == ()  # once
    assert turns.playout_idle(reply_active=False) == (
        CloseCaption(ItemId("it_a")),
        SetAgentState("listening"),
    )
    assert turns.playout_idle(reply_active=False) == (SetAgentState("listening"),)


def test_items_whose_audio_is_done_are_not_cut_by_a_new_socket() -> None:
    turns = TurnTaking()
    turns.receive(delta("resp_1", "it_a"))  # audio before its item: held all the same
    turns.receive(ev.AudioDone(response_id=ResponseId("resp_1"), item_id=ItemId("it_a")))
    turns.receive(item_added("resp_2", "it_b"))
    turns.receive(
        ev.ResponseDone(
            response_id=ResponseId("resp_2"),
            status="cancelled",
            reason="turn_detected",
            usage=None,
            output=(Item(ItemId("it_b"), "message", "assistant"),),
        )
    )
    turns.receive(item_added("resp_3", "it_c"))
    turns.playout_stopped({"it_c": 0}, response_id="resp_3")  # a barge-in let go of it
    assert turns.socket_replaced() == ()


def test_items_held_for_audio_are_bounded() -> None:
    turns = TurnTaking()
    for n in range(MAX_HELD + 10):
        turns.receive(delta("resp_1", f"it_{n}"))
    cut = turns.socket_replaced()
    assert len(cut) == MAX_HELD and cut[-1] == EndAudio(ItemId(f"it_{MAX_HELD + 9}"))
