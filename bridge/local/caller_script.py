"""What a test caller says, and when, from what it hears: the mouth and ear of both callers.

The callers of the impairment benchmark (``bridge.local.impaired_caller``: one over WebRTC,
one over its own WebSocket) speak the same :class:`Turn` list the same way, whatever the
network does to them, because they react to what they hear as a person would: say an
utterance, wait for the reply, let it finish (or talk over it after ``barge_in_ms``), pause,
say the next one. :class:`Mouth` makes that decision 10 ms at a time, without I/O, on its own
timeline: *said time*, seconds from the first sample it produced (sample ``i`` of the said
track is at ``i / rate``). :class:`Ear` is told, on the same timeline, when something loud
was heard.

The mouth records what it did (:attr:`Mouth.records`): when each utterance started and ended,
whether the reply was heard, barged in on, or never came. The figures themselves are read
later from the recordings (``bridge.local.heard``); the mouth's own view only drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr
from numpy.typing import NDArray

from bridge.local.wavfile import demo_recording, read_wav

FRAME_S = 0.01
REPLY_LEVEL = 30  # peak level of a 10 ms frame that counts as agent audio (see heard.py)

# Phrases of the bundled recording (bridge/assets/README.md), seconds in the file.
PHRASES: dict[str, tuple[float, float]] = {
    "question": (0.60, 4.25),  # "Hello, could you tell me what the weather will be like ..."
    "correction": (6.15, 8.50),  # "Sorry, I meant Berlin, not Paris."
    "berlin": (6.15, 7.62),  # "Sorry, I meant Berlin"
}


@dataclass(frozen=True, slots=True)
class Turn:
    """One utterance; ``barge_in_ms``: talk over its reply (with the next turn's utterance)
    once it has been heard this long."""

    utterance: str
    barge_in_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"utterance": self.utterance, "barge_in_ms": self.barge_in_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Turn:
        barge = data.get("barge_in_ms")
        return cls(str(data["utterance"]), None if barge is None else float(barge))


#: Four turns: two answered, a third talked over 600 ms into its reply, the correction
#: answered (about 25 s with the echo model).
DEFAULT_TURNS = (
    Turn("question"),
    Turn("correction"),
    Turn("question", barge_in_ms=600),
    Turn("correction"),
)
#: Two turns for tests: the long question talked over 600 ms into its reply, then a short
#: one heard out. The question (3.65 s), because over TCP at 10 % loss the barge-in itself can
#: wait on retransmissions for a second or more, and a short reply would then play out whole;
#: 600 ms as in DEFAULT_TURNS (500 falls in the pause after "Hello,", where no stop is heard).
SHORT_TURNS = (Turn("question", barge_in_ms=600), Turn("berlin"))


def phrase(name: str, rate: int) -> NDArray[np.int16]:
    """A phrase of the bundled recording at ``rate`` (mono int16)."""
    start, end = PHRASES[name]
    wav = read_wav(demo_recording())
    x = wav.mono()[int(start * wav.rate) : int(end * wav.rate)].astype(np.float32)
    y = soxr.resample(x, wav.rate, rate, "VHQ")
    out: NDArray[np.int16] = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return out


class Ear:
    """When the caller last heard something loud, on the said timeline."""

    def __init__(self, level: float = REPLY_LEVEL) -> None:
        self.level = level
        self.last_loud: float | None = None  # end of the last loud frame

    def hear(self, at: float, samples: NDArray[np.int16], rate: int) -> None:
        """``samples`` were heard from said time ``at`` (seconds)."""
        if samples.size and int(np.max(np.abs(samples.astype(np.int32)))) > self.level:
            self.last_loud = at + samples.size / rate


@dataclass(slots=True)
class TurnRecord:
    """What the mouth did in one turn (said time, seconds)."""

    utterance: str
    start: float
    end: float | None = None
    reply_heard: float | None = None  # the mouth's own view; the recording has the truth
    barged_in: bool = False
    unanswered: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "utterance": self.utterance,
            "start_s": round(self.start, 4),
            "end_s": None if self.end is None else round(self.end, 4),
            "reply_heard_s": None if self.reply_heard is None else round(self.reply_heard, 4),
            "barged_in": self.barged_in,
            "unanswered": self.unanswered,
        }


@dataclass
class Mouth:
    """Says ``turns`` one 10 ms frame at a time (:meth:`frame`), reacting to :class:`Ear`.

    ``reply_timeout_s``: a reply not heard by then is given up on (the turn is
    ``unanswered``); ``end_quiet_s``: that long without hearing anything ends a reply;
    ``pause_s`` between a reply and the next utterance; ``tail_s`` of silence at the end.
    """

    turns: tuple[Turn, ...]
    rate: int
    reply_timeout_s: float = 8.0
    end_quiet_s: float = 0.7
    pause_s: float = 0.3
    lead_s: float = 0.3
    tail_s: float = 1.0
    records: list[TurnRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # new ones: take_events()

    def __post_init__(self) -> None:
        self._phrases = {t.utterance: phrase(t.utterance, self.rate) for t in self.turns}
        self._frame = int(self.rate * FRAME_S)
        self._k = 0  # frames produced
        self._turn = -1
        self._speaking: NDArray[np.int16] | None = None
        self._offset = 0
        self._waiting_since: float | None = None  # utterance end, or reply start
        self._quiet_until: float | None = None  # pause before the next utterance
        self._done_at: float | None = None
        self._quiet_until = self.lead_s
        self.stalled_frames = 0  # frames lost to the caller's own lateness (pause())
        self.stalls: list[tuple[float, float]] = []  # (said time, ms) of each

    @property
    def now(self) -> float:
        return self._k * FRAME_S

    @property
    def done(self) -> bool:
        return self._done_at is not None and self.now >= self._done_at + self.tail_s

    def take_events(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events

    def pause(self, frames: int) -> NDArray[np.int16]:
        """The caller's own process fell ``frames`` behind its clock (a loaded machine): those
        frames went by in silence (an utterance under way resumes where it was). Returns the
        silence, for the said track, so it stays aligned with the wall clock."""
        self.stalls.append((round(self.now, 3), frames * FRAME_S * 1000))
        self._k += frames
        self.stalled_frames += frames
        return np.zeros(frames * self._frame, dtype=np.int16)

    def frame(self, ear: Ear) -> NDArray[np.int16] | None:
        """The next 10 ms to say (zeros when quiet), or None when the script is over."""
        if self.done:
            return None
        self._decide(ear)
        out = np.zeros(self._frame, dtype=np.int16)
        if self._speaking is not None:
            piece = self._speaking[self._offset : self._offset + self._frame]
            out[: piece.size] = piece
            self._offset += self._frame
            if self._offset >= self._speaking.size:
                self._speaking = None
                end = self.now + piece.size / self.rate
                self.records[-1].end = end
                self._waiting_since = end
                self._event("said_end", end)
        self._k += 1
        return out

    def _decide(self, ear: Ear) -> None:
        now = self.now
        if self._speaking is not None or self._done_at is not None:
            return
        if self._quiet_until is not None:
            if now >= self._quiet_until:
                self._quiet_until = None
                self._next_turn()
            return
        record = self.records[-1]
        turn = self.turns[self._turn]
        assert self._waiting_since is not None
        if record.reply_heard is None:
            loud = ear.last_loud
            if loud is not None and loud > self._waiting_since:
                record.reply_heard = loud - FRAME_S
                self._event("reply", record.reply_heard)
            elif now - self._waiting_since >= self.reply_timeout_s:
                record.unanswered = True
                self._event("unanswered", now)
                self._finish_turn(now)
            return
        if turn.barge_in_ms is not None and self._turn + 1 < len(self.turns):
            if now - record.reply_heard >= turn.barge_in_ms / 1000:
                record.barged_in = True
                self._event("barge_in", now)
                self._next_turn()
            return
        assert ear.last_loud is not None
        if now - ear.last_loud >= self.end_quiet_s:
            self._finish_turn(now)

    def _finish_turn(self, now: float) -> None:
        if self._turn + 1 < len(self.turns):
            self._quiet_until = now + self.pause_s
        else:
            self._done_at = now
            self._event("done", now)

    def _next_turn(self) -> None:
        self._turn += 1
        turn = self.turns[self._turn]
        self._speaking = self._phrases[turn.utterance]
        self._offset = 0
        self._waiting_since = None
        self.records.append(TurnRecord(turn.utterance, self.now))
        self._event("said", self.now)

    def _event(self, kind: str, at: float) -> None:
        self.events.append({"event": kind, "turn": self._turn, "at_s": round(at, 4)})
