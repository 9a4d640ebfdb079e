"""What the simulated model says: deterministic replies and transcripts.

Transcripts: a user utterance of D seconds is "heard" as the first ``words_for(D)`` words of
``WORDS`` (NATO alphabet, cycling), about 2.5 words per second, at least one. Word k of n
in a reply of N samples starts at sample ``floor(k * N / n)``; its transcript delta is sent
with the audio delta that carries that sample, so a client that played P ms of a reply has
received exactly the words starting before P, which are the words a truncation at P keeps.

Behaviours:

- ``echo``: to a user audio turn, the caller's utterance itself (the committed audio without
  leading and trailing silence, samples unchanged), with that utterance's transcript; to a
  user text item, synthetic speech (``audio.spoken_word`` per word, 400 ms each) whose
  transcript is the text; to a function output, speech of the output string;
- ``tone``: 1.5 s of 440 Hz at -12 dBFS peak, transcript ``TONE_TRANSCRIPT``;
- ``tool``: to a user turn not yet answered by a call, a ``function_call`` of the first tool
  of the session (``DEFAULT_TOOL`` when there is none) with ``{"transcript": ...}`` as the
  arguments; to a function output, speech of the output string; otherwise as ``echo``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .audio import PCM_RATE, AudioFormat, decode, encode, spoken_word, tone
from .config import Behavior
from .vad import voiced_span

WORDS: Final = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
    "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
)  # fmt: skip
WORDS_PER_SECOND: Final = 2.5
TONE_TRANSCRIPT: Final = "this is the simulator test tone"
DEFAULT_TOOL: Final = "lookup"
NOTHING_TO_SAY: Final = "nothing to echo"


def words_for(seconds: float) -> tuple[str, ...]:
    """The deterministic "transcript" of an utterance lasting ``seconds``."""
    n = max(1, math.floor(seconds * WORDS_PER_SECOND + 0.5))
    return tuple(WORDS[k % len(WORDS)] for k in range(n))


@dataclass(frozen=True, slots=True)
class Speech:
    """A spoken reply: audio in ``fmt`` and the words it says, evenly spread over it."""

    audio: bytes
    fmt: AudioFormat
    words: tuple[str, ...]

    @property
    def transcript(self) -> str:
        """The words joined by spaces."""
        return " ".join(self.words)

    @property
    def duration_ms(self) -> float:
        """Length of the audio."""
        return len(self.audio) / self.fmt.bytes_per_ms


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A reply that calls a function."""

    name: str
    arguments: str


Reply = Speech | ToolCall


@dataclass(frozen=True, slots=True)
class Turn:
    """What a reply answers: the latest user message or function output in the context."""

    kind: str
    """``audio``, ``text``, ``tool_output`` or ``none``."""
    audio: bytes = b""
    fmt: AudioFormat = AudioFormat.PCM
    text: str = ""
    transcript: str | None = None
    """The transcript of an audio turn, when one is known (given by the client, or ASR)."""
    answered_by_call: bool = False
    """A function call has already been made in reply to this turn."""


def utterance(audio: bytes, fmt: AudioFormat, threshold: float = 0.5) -> bytes:
    """``audio`` without its leading and trailing silence (all of it when nothing is voiced)."""
    samples = decode(audio, fmt)
    span = voiced_span(samples, fmt.sample_rate, threshold)
    if span is None:
        return audio
    start, end = span
    return audio[start * fmt.sample_width : end * fmt.sample_width]


def transcript_of(audio: bytes, fmt: AudioFormat, threshold: float = 0.5) -> str:
    """The deterministic transcript of user audio (from the length of its utterance)."""
    seconds = len(utterance(audio, fmt, threshold)) / fmt.bytes_per_ms / 1000.0
    return " ".join(words_for(seconds))


def synth_speech(text: str) -> Speech:
    """Speech-like audio for ``text``: one 400 ms word burst per word."""
    words = tuple(text.split()) or (NOTHING_TO_SAY,)
    samples = np.concatenate([spoken_word(w) for w in words])
    return Speech(encode(samples, AudioFormat.PCM), AudioFormat.PCM, words)


def tone_reply() -> Speech:
    """The fixed ``tone`` reply."""
    samples = tone(440.0, 1.5, -12.0, PCM_RATE)
    return Speech(encode(samples, AudioFormat.PCM), AudioFormat.PCM, tuple(TONE_TRANSCRIPT.split()))


def _echo(turn: Turn, threshold: float) -> Speech:
    if turn.kind == "audio":
        said = utterance(turn.audio, turn.fmt, threshold)
        seconds = len(said) / turn.fmt.bytes_per_ms / 1000.0
        words = tuple(turn.transcript.split()) if turn.transcript else words_for(seconds)
        return Speech(said, turn.fmt, words or words_for(seconds))
    if turn.kind in ("text", "tool_output"):
        return synth_speech(turn.text)
    return synth_speech(NOTHING_TO_SAY)


def _tool_name(tools: list[dict[str, Any]], tool_choice: Any) -> str | None:
    if tool_choice == "none":
        return None
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        return str(tool_choice["name"])
    for tool in tools:
        if tool.get("type", "function") == "function" and tool.get("name"):
            return str(tool["name"])
    return DEFAULT_TOOL


def plan_reply(
    behavior: Behavior,
    turn: Turn,
    *,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    threshold: float = 0.5,
) -> Reply:
    """The reply ``behavior`` gives to ``turn``."""
    if behavior is Behavior.TONE:
        return tone_reply()
    if behavior is Behavior.TOOL and turn.kind in ("audio", "text") and not turn.answered_by_call:
        name = _tool_name(tools, tool_choice)
        if name is not None:
            if turn.kind == "audio":
                heard = turn.transcript or transcript_of(turn.audio, turn.fmt, threshold)
            else:
                heard = turn.text
            return ToolCall(name, json.dumps({"transcript": heard}))
    return _echo(turn, threshold)
