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
- ``tool``: to a user turn not yet answered by a call, a ``function_call`` of a declared
  function — the one ``tool_choice`` names, else the first of the response's (or session's)
  tools — with arguments that fit its ``parameters`` schema and carry the transcript in the
  first string parameter that allows it (``arguments``); with no function declared,
  ``tool_choice: "none"``, a choice naming an undeclared function, or a schema nothing fits,
  it answers as ``echo`` (the real model never calls a function it was not given). To a
  function output, speech of the output string; otherwise as ``echo``. With
  ``tool_from_turn`` N > 1, the user turns before the Nth are answered as ``echo``.

In every behaviour but ``tone``, a response asked for while a function call still awaits its
output (GA's asynchronous function calling: a client filling the wait) says
``HOLDING_LINE``, as a model told to hold would.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .arguments import arguments_for
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
HOLDING_LINE: Final = "one moment please"
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
    """``audio``, ``text``, ``tool_output``, ``pending_call`` (a call awaits its output) or
    ``none``."""
    audio: bytes = b""
    fmt: AudioFormat = AudioFormat.PCM
    text: str = ""
    transcript: str | None = None
    """The transcript of an audio turn, when one is known (given by the client, or ASR)."""
    answered_by_call: bool = False
    """A function call has already been made in reply to this turn."""
    number: int = 0
    """Which user turn of the conversation this is (1: the first), for user turns."""


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


def _function(tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any] | None:
    """The declared function a ``tool`` reply calls, or ``None`` (then it speaks)."""
    functions = [
        tool
        for tool in tools
        if isinstance(tool, dict)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("name"), str)
    ]
    if tool_choice == "none" or not functions:
        return None
    if isinstance(tool_choice, dict):
        if tool_choice.get("type") != "function":
            return None
        return next((t for t in functions if t["name"] == tool_choice.get("name")), None)
    return functions[0]


def plan_reply(
    behavior: Behavior,
    turn: Turn,
    *,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    threshold: float = 0.5,
    tool_from_turn: int = 1,
) -> Reply:
    """The reply ``behavior`` gives to ``turn`` (``tool`` calls from user turn
    ``tool_from_turn`` on)."""
    if behavior is Behavior.TONE:
        return tone_reply()
    if turn.kind == "pending_call":
        return synth_speech(HOLDING_LINE)
    if (
        behavior is Behavior.TOOL
        and turn.kind in ("audio", "text")
        and not turn.answered_by_call
        and turn.number >= tool_from_turn
    ):
        function = _function(tools, tool_choice)
        if function is not None:
            if turn.kind == "audio":
                heard = turn.transcript or transcript_of(turn.audio, turn.fmt, threshold)
            else:
                heard = turn.text
            arguments = arguments_for(function.get("parameters"), heard)
            if arguments is not None:
                return ToolCall(function["name"], json.dumps(arguments))
    return _echo(turn, threshold)
