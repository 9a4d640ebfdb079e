"""Turn-taking between the caller and the agent, without I/O.

:class:`TurnTaking` is the one owner of turn state: whether the caller is speaking (and since
which millisecond of the socket's audio), whether a caller turn awaits its reply, whether the
agent's audio is playing. Server events and what the playout reports (an item started, the
source went idle, how many samples of each item had been played when it was stopped) go in;
actions come out, for the I/O layer to carry out in order. No asyncio, no clock, no
``livekit``: the bridge executes the actions on the room, the supervisor reads the state to
find a turn boundary for a rollover.

Barge-in, as the actions say it::

    SpeechStarted  → StopPlayout("speech"), SetAgentState("listening")
    playout_stopped({item: samples played}, response_id)
                   → DiscardResponse(response_id), [CancelResponse()], CutItem(item, played_ms)...

``StopPlayout`` is carried out first and at once (the source queue cleared in the handler of
``speech_started``); its result, the samples of each cut item that had left the source, comes
back through :meth:`TurnTaking.playout_stopped`, whose actions the I/O layer runs before the
rest of the first list, so the order is: stop, discard, cancel, cut each item, then the state.
``CutItem`` closes the item's caption with only the heard text and truncates the item at
``played_ms``; the protocol core clamps that to the audio received and deletes the item when
it is 0 (nothing heard).

A turn, and a reply: ``SpeechStopped`` → ``TurnEnded``, ``SetAgentState("thinking")``; the
reply's audio item added → ``ExpectAudio``; its first audio in the source (:meth:`item_started`)
→ ``SetAgentState("speaking")``; the source idle → ``SetAgentState("listening")``. A reply
whose socket was lost (:meth:`socket_replaced`) → ``EndAudio`` for its items, and once they
have played out, ``CloseCaption``. A typed message (:meth:`chat`) → ``StopPlayout("chat")``,
``SendUserText``, ``CreateResponse``, ``SetAgentState("thinking")``.

What the wire knows stays with the protocol core, which sends the requests: whether a response
is active or asked for (``RealtimeProtocol.response_active``) and its id are passed in where a
decision needs them, never mirrored here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sessions import events as ev
from sessions.events import ItemId, ResponseId, ServerEvent
from sessions.session_config import SessionConfig

SAMPLE_RATE = 24_000
MAX_HELD = 64  # items held open for audio, at most

AgentStateName = Literal["listening", "thinking", "speaking"]


# ---------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class StopPlayout:
    """Clear the agent's audio now; report what each cut item had played
    (:meth:`TurnTaking.playout_stopped`). ``cause``: the caller spoke, or typed."""

    cause: Literal["speech", "chat"]


@dataclass(frozen=True, slots=True)
class DiscardResponse:
    """Drop the rest of ``response_id``'s audio and text as it arrives."""

    response_id: ResponseId


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """Send ``response.cancel`` (the server does not cancel on speech by itself)."""


@dataclass(frozen=True, slots=True)
class CutItem:
    """Close ``item_id``'s caption with the heard text; truncate it at ``played_ms``."""

    item_id: ItemId
    played_ms: int


@dataclass(frozen=True, slots=True)
class SetAgentState:
    state: AgentStateName


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller's turn ended at ``audio_end_ms`` of the socket's audio, after
    ``speech_ms`` of speech."""

    item_id: ItemId
    audio_end_ms: int
    speech_ms: int


@dataclass(frozen=True, slots=True)
class ExpectAudio:
    """Audio of ``item_id`` is coming: the playout should hold the item open."""

    item_id: ItemId


@dataclass(frozen=True, slots=True)
class EndAudio:
    """No more audio will come for ``item_id`` (its socket is gone): what arrived plays out."""

    item_id: ItemId


@dataclass(frozen=True, slots=True)
class CloseCaption:
    """Close ``item_id``'s caption with the text of what was heard (its reply was cut off)."""

    item_id: ItemId


@dataclass(frozen=True, slots=True)
class SendUserText:
    """Add a typed caller message to the conversation."""

    text: str


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """Ask for a response."""


TurnAction = (
    StopPlayout
    | DiscardResponse
    | CancelResponse
    | CutItem
    | SetAgentState
    | TurnEnded
    | ExpectAudio
    | EndAudio
    | CloseCaption
    | SendUserText
    | CreateResponse
)
Actions = tuple[TurnAction, ...]


class Boundary(enum.IntEnum):
    """How far the conversation is from a turn boundary (for a rollover)."""

    NONE = 0  # the server is mid-turn: the caller speaking, a response active or asked for
    LOOSE = 1  # the server is between turns; the bridge is not: a reply awaited or playing
    STRICT = 2  # between turns on both sides


# ---------------------------------------------------------------------- the core


class TurnTaking:
    """Who has the floor, and what to do when that changes.

    ``cancel_on_barge_in``: the server does not cancel a response when the caller starts
    speaking (no turn detection, or ``interrupt_response`` off), so a barge-in sends
    ``response.cancel`` itself. ``audio_out``: replies are spoken (``output_modalities``
    audio); in text mode nothing plays and a reply is over when its response is done.
    """

    def __init__(self, *, cancel_on_barge_in: bool = False, audio_out: bool = True) -> None:
        self.cancel_on_barge_in = cancel_on_barge_in
        self.audio_out = audio_out
        self.caller_speaking = False
        #: Where the caller's current speech starts on the socket's audio (``None``: silent).
        self.speech_start_ms: int | None = None
        #: The caller's last turn ended and no reply to it has been heard or finished yet.
        self.awaiting_reply = False
        #: The agent's audio is playing (from the first item started to the source idle).
        self.playing = False
        self._answer: ResponseId | None = None  # the response created for the awaited turn
        # Items the playout holds open for audio (until their audio or response is done),
        # and those a lost socket left open, whose captions close once they have played out.
        self._audio_items: dict[ItemId, None] = {}
        self._abandoned: list[ItemId] = []

    @classmethod
    def for_config(cls, config: SessionConfig) -> TurnTaking:
        turn = config.turn_detection
        return cls(
            cancel_on_barge_in=turn is None or not turn.interrupt_response,
            audio_out=config.output_modalities == ("audio",),
        )

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        """A turn is in progress on our side: the caller speaking, a reply awaited or playing."""
        return self.caller_speaking or self.awaiting_reply or self.playing

    def boundary(self, *, reply_active: bool) -> Boundary:
        """Where we stand between turns; ``reply_active``: the wire's response state (a
        response in flight, asked for or held)."""
        if reply_active or self.caller_speaking:
            return Boundary.NONE
        if self.awaiting_reply or self.playing:
            return Boundary.LOOSE
        return Boundary.STRICT

    # ------------------------------------------------------------------ inputs

    def receive(self, event: ServerEvent) -> Actions:
        """An event of the socket carrying the call."""
        if isinstance(event, ev.AudioDelta):  # the most frequent: first, and cheap
            if event.item_id not in self._audio_items:
                self._hold(event.item_id)
            return ()
        if isinstance(event, ev.AudioDone):
            self._audio_items.pop(event.item_id, None)
            return ()
        if isinstance(event, ev.SpeechStarted):
            self.caller_speaking = True
            self.speech_start_ms = event.audio_start_ms
            return (StopPlayout("speech"), SetAgentState("listening"))
        if isinstance(event, ev.SpeechStopped):
            start = self.speech_start_ms if self.speech_start_ms is not None else 0
            self.caller_speaking = False
            self.speech_start_ms = None
            self.awaiting_reply = True
            self._answer = None
            speech_ms = max(event.audio_end_ms - start, 0)
            return (
                TurnEnded(event.item_id, event.audio_end_ms, speech_ms),
                SetAgentState("thinking"),
            )
        if isinstance(event, ev.OutputItemAdded):
            if self.audio_out and event.item.type == "message":
                self._hold(event.item.id)
                return (ExpectAudio(event.item.id),)
            return ()
        if isinstance(event, ev.ResponseCreated):
            if self.awaiting_reply and self._answer is None:
                self._answer = event.response_id
            return ()
        if isinstance(event, ev.ResponseDone):
            # The reply to the awaited turn finished without being heard: text only, cut,
            # failed, or a tool call whose answer is asked for next (the wire stays busy
            # with that request). A response created before the turn ended (cancelled by
            # it) does not count.
            if event.response_id == self._answer:
                self.awaiting_reply = False
                self._answer = None
            for item in event.output:
                self._audio_items.pop(item.id, None)
            if not self.audio_out:
                return (SetAgentState("listening"),)
        return ()

    def playout_stopped(self, played: Mapping[str, int], *, response_id: str | None) -> Actions:
        """``StopPlayout`` was carried out: ``played`` holds, per item cut short, the samples
        (24 kHz) that had left the source; ``response_id`` is the wire's active response."""
        self._audio_items.clear()  # the playout let go of every item it held
        actions: list[TurnAction] = []
        if response_id is not None:
            actions.append(DiscardResponse(ResponseId(response_id)))
            if self.cancel_on_barge_in:
                actions.append(CancelResponse())
        for item_id, samples in played.items():
            actions.append(CutItem(ItemId(item_id), samples * 1000 // SAMPLE_RATE))
        return tuple(actions)

    def item_started(self, item_id: str) -> Actions:
        """The first audio of ``item_id`` entered the source: the agent is heard."""
        self.playing = True
        self.awaiting_reply = False
        self._answer = None
        return (SetAgentState("speaking"),)

    def playout_idle(self, *, reply_active: bool, tool_running: bool = False) -> Actions:
        """Everything captured has played and nothing more is expected (``tool_running``: a
        function call the model made is still running, so the agent is thinking)."""
        self.playing = False
        closing = tuple(CloseCaption(item) for item in self._abandoned)
        self._abandoned.clear()
        if self.caller_speaking or reply_active:
            return closing
        return (*closing, SetAgentState("thinking" if tool_running else "listening"))

    def chat(self, text: str) -> Actions:
        """A message typed by the caller: stop the agent, then answer the message."""
        text = text.strip()
        if not text:
            return ()
        return (
            StopPlayout("chat"),
            SendUserText(text),
            CreateResponse(),
            SetAgentState("thinking"),
        )

    def socket_replaced(self) -> Actions:
        """A new socket carries the call: its VAD starts fresh and reports speech in the
        re-sent audio anew, so nothing of the caller's speech carries over; a reply the old
        socket was still sending will send no more: its audio so far plays out, then its
        caption closes with what was heard (the reply itself is resumed by the supervisor)."""
        self.caller_speaking = False
        self.speech_start_ms = None
        self._answer = None  # the old socket's responses are gone; a turn still awaits one
        cut = list(self._audio_items)
        self._audio_items.clear()
        self._abandoned += cut
        return tuple(EndAudio(item) for item in cut)

    def _hold(self, item_id: ItemId) -> None:
        self._audio_items[item_id] = None
        if len(self._audio_items) > MAX_HELD:  # a server that never says done cannot grow it
            del self._audio_items[next(iter(self._audio_items))]
