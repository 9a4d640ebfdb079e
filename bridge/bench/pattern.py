"""What a benchmark caller says, and when: a seeded pattern that reacts to the agent.

The caller speaks an utterance (taken from the bundled demo recording), waits for the agent's
reply, and then either talks over it at a random moment (a barge-in) or lets it finish and
pauses before speaking again. Every decision comes from one seeded ``random.Random``, so a
session's pattern depends only on its seed and on when the agent is heard.

The whole signal carries a low noise floor (about -77 dBFS, never an exact zero): real
microphones are never digitally silent, and it lets the listener tell "the agent is
playing" (non-zero samples, whatever the reply says) from "nothing left the source" (exact
zeros), which is how replies, gaps inside them and cut points are measured.

Pure numpy: the caller is driven 10 ms at a time by :meth:`CallerScript.next_frame` with the
listener's view of the agent (:class:`AgentView`).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np
import soxr
from numpy.typing import NDArray

from bridge.local.wavfile import demo_recording, read_wav

FRAME_MS = 10
NOISE_LSB = (2, 6)  # noise floor: |sample| in this range, random sign (about -77 dBFS)
# Through a real server two Opus passes drop a -77 dBFS floor to zeros in places, and decode
# the agent's digital silence to a few LSB: there the floor is louder (about -51 dBFS RMS,
# still 11 dB under the simulator's default VAD threshold) and the listener counts samples
# above ROOM_HEARD_THRESHOLD as heard (bridge.bench.room_callers).
ROOM_NOISE_LSB = (60, 120)

# Speech in the bundled recording (seconds): the question and the correction.
_UTTERANCES_S = ((0.6, 4.25), (6.15, 8.5))


class AgentView(Protocol):
    """What the caller knows of the agent: what it hears."""

    @property
    def speaking(self) -> bool: ...

    @property
    def quiet_s(self) -> float:
        """Seconds since the agent was last heard (0 while it speaks)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PatternOptions:
    seed: int = 1
    barge_in_probability: float = 0.4
    barge_in_after_s: tuple[float, float] = (0.4, 1.2)  # into the agent's reply
    pause_s: tuple[float, float] = (0.6, 2.0)  # after a reply has ended
    reply_timeout_s: float = 4.0  # no reply heard by then: speak again
    first_pause_s: tuple[float, float] = (0.3, 1.5)  # staggers concurrent callers
    noise_lsb: tuple[int, int] = NOISE_LSB  # the caller's noise floor (see ROOM_NOISE_LSB)

    def __post_init__(self) -> None:
        if not 0.0 <= self.barge_in_probability <= 1.0:
            raise ValueError("barge_in_probability must be within [0, 1]")
        for name in ("barge_in_after_s", "pause_s", "first_pause_s"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f"{name} must be an interval (low <= high, both >= 0)")


class _State(enum.Enum):
    PAUSE = "pause"
    SPEAKING = "speaking"
    AWAIT_REPLY = "await_reply"
    BARGE_WAIT = "barge_wait"
    LISTENING = "listening"


@cache
def bundled_utterances(rate: int) -> tuple[NDArray[np.int16], ...]:
    """The two utterances of the bundled recording, at ``rate``."""
    path = demo_recording()
    wav = read_wav(path)
    mono = wav.mono()
    out = []
    for start, end in _UTTERANCES_S:
        piece = mono[int(start * wav.rate) : int(end * wav.rate)].astype(np.float32)
        if rate != wav.rate:
            piece = soxr.resample(piece, wav.rate, rate, "VHQ")
        out.append(np.clip(np.rint(piece), -32768, 32767).astype(np.int16))
    return tuple(out)


def noise_floor(
    samples: int, rng: np.random.Generator, lsb: tuple[int, int] = NOISE_LSB
) -> NDArray[np.int16]:
    """Low-level noise with no exact zeros, ``lsb`` its range of magnitudes."""
    magnitude = rng.integers(lsb[0], lsb[1] + 1, samples)
    sign = rng.choice(np.array([-1, 1]), samples)
    noise: NDArray[np.int16] = (magnitude * sign).astype(np.int16)
    return noise


@dataclass(slots=True)
class PatternCounts:
    utterances: int = 0
    barge_ins: int = 0  # utterances started while the agent was heard
    unanswered: int = 0  # utterances after which no reply came in time


class CallerScript:
    """Produces the caller's audio 10 ms at a time."""

    def __init__(
        self,
        rate: int,
        options: PatternOptions | None = None,
        utterances: tuple[NDArray[np.int16], ...] | None = None,
    ) -> None:
        self.rate = rate
        self.options = options = options or PatternOptions()
        self.frame = rate * FRAME_MS // 1000
        self._rng = random.Random(options.seed)
        noise_rng = np.random.default_rng(options.seed)
        self._noise = noise_floor(rate * 2, noise_rng, options.noise_lsb)
        self._noise_at = 0
        self._utterances = tuple(
            self._with_floor(u, noise_rng) for u in (utterances or bundled_utterances(rate))
        )
        self.counts = PatternCounts()
        self.utterance_starts: list[float] = []  # audio time (s) each utterance begins
        self.utterance_ends: list[float] = []  # audio time (s) each utterance's last frame ends
        self._t = 0.0  # audio time: seconds of caller audio produced
        self._state = _State.PAUSE
        self._until = self._t + self._rng.uniform(*options.first_pause_s)
        self._speech: NDArray[np.int16] | None = None
        self._offset = 0

    def _with_floor(self, speech: NDArray[np.int16], rng: np.random.Generator) -> NDArray[np.int16]:
        mixed = speech.astype(np.int32) + noise_floor(speech.size, rng, self.options.noise_lsb)
        mixed[mixed == 0] = 1
        out: NDArray[np.int16] = np.clip(mixed, -32768, 32767).astype(np.int16)
        return out

    @property
    def state(self) -> str:
        return self._state.value

    @property
    def speaking(self) -> bool:
        return self._state is _State.SPEAKING

    def next_frame(self, agent: AgentView) -> NDArray[np.int16]:
        """The next 10 ms of the caller, given what the caller hears of the agent now."""
        self._advance(agent)
        if self._speech is not None:
            frame = self._speech[self._offset : self._offset + self.frame]
            self._offset += frame.size
            if frame.size < self.frame:
                frame = np.concatenate((frame, self._floor(self.frame - frame.size)))
            if self._offset >= self._speech.size:
                self.utterance_ends.append(self._t + FRAME_MS / 1000)
                self._speech = None
                self._state = _State.AWAIT_REPLY
                self._until = self._t + self.options.reply_timeout_s
        else:
            frame = self._floor(self.frame)
        self._t += FRAME_MS / 1000
        return frame

    def _floor(self, samples: int) -> NDArray[np.int16]:
        start = self._noise_at
        if start + samples > self._noise.size:
            start = 0
        self._noise_at = start + samples
        floor: NDArray[np.int16] = self._noise[start : start + samples]
        return floor

    def _speak(self, agent: AgentView) -> None:
        self._speech = self._utterances[self._rng.randrange(len(self._utterances))]
        self._offset = 0
        self._state = _State.SPEAKING
        self.utterance_starts.append(self._t)
        self.counts.utterances += 1
        if agent.speaking:
            self.counts.barge_ins += 1

    def _advance(self, agent: AgentView) -> None:
        state, now, options = self._state, self._t, self.options
        if state is _State.PAUSE:
            if now >= self._until:
                self._speak(agent)
        elif state is _State.AWAIT_REPLY:
            if agent.speaking:
                if self._rng.random() < options.barge_in_probability:
                    self._state = _State.BARGE_WAIT
                    self._until = now + self._rng.uniform(*options.barge_in_after_s)
                else:
                    self._state = _State.LISTENING
            elif now >= self._until:
                self.counts.unanswered += 1
                self._pause()
        elif state is _State.BARGE_WAIT:
            if now >= self._until:
                self._speak(agent)
        elif state is _State.LISTENING:
            if agent.quiet_s >= 0.3:
                self._pause()

    def _pause(self) -> None:
        self._state = _State.PAUSE
        self._until = self._t + self._rng.uniform(*self.options.pause_s)
